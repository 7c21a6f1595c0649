//! [`Dialect`] on PostgreSQL: whole batches as typed arrays read with
//! `UNNEST`.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::*;

impl Dialect for PgConnection {
    async fn upsert_samples(
        &mut self,
        samples: &[NewSample],
        now: Timestamp,
    ) -> sqlx::Result<Vec<UpsertedSample>> {
        let column = |f: fn(&NewSample) -> Option<&str>| samples.iter().map(f).collect::<Vec<_>>();
        let sql = format!(
            "INSERT INTO training_samples ({COLUMNS}) \
             SELECT t.*, $13, $13 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                    $5::text[], $6::float8[], $7::text[], $8::int4[], $9::int4[], $10::text[], \
                    $11::text[], $12::int8[]) AS t \
             {ON_CONFLICT} {RETURNING}"
        );
        sqlx::query_as::<_, UpsertedSample>(&sql)
            .bind(column(|s| Some(s.text.as_str())))
            .bind(column(|s| Some(s.normalized_text.as_str())))
            .bind(column(|s| Some(s.intent.as_str())))
            .bind(column(|s| s.language.as_deref()))
            .bind(column(|s| Some(s.source.as_str())))
            .bind(samples.iter().map(|s| s.confidence).collect::<Vec<_>>())
            .bind(column(|s| Some(s.review_status.as_str())))
            .bind(samples.iter().map(|s| s.priority).collect::<Vec<_>>())
            .bind(samples.iter().map(|s| s.occurrences).collect::<Vec<_>>())
            .bind(column(|s| s.predicted_intent.as_deref()))
            .bind(column(|s| s.predicted_by_version.as_deref()))
            .bind(
                samples
                    .iter()
                    .map(|s| s.conversation_id)
                    .collect::<Vec<_>>(),
            )
            .bind(now)
            .fetch_all(self)
            .await
    }

    async fn stored_labels(&mut self, texts: &[&str]) -> sqlx::Result<Vec<StoredLabel>> {
        sqlx::query_as(&format!(
            "SELECT {STORED_LABEL_COLUMNS} FROM training_samples WHERE normalized_text = ANY($1)"
        ))
        .bind(texts)
        .fetch_all(self)
        .await
    }

    async fn relabel(&mut self, relabels: &[Relabel], now: Timestamp) -> sqlx::Result<()> {
        if relabels.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = relabels.iter().map(|r| r.id).collect();
        let intents: Vec<&str> = relabels.iter().map(|r| r.intent.as_str()).collect();
        let corrected: Vec<Option<&str>> = relabels
            .iter()
            .map(|r| r.corrected_from.as_deref())
            .collect();
        sqlx::query(
            "UPDATE training_samples t SET intent = r.intent, corrected_from = r.corrected_from, \
                 source = 'import', review_status = 'approved', updated_at = $4 \
             FROM UNNEST($1::int8[], $2::text[], $3::text[]) AS r(id, intent, corrected_from) \
             WHERE t.id = r.id",
        )
        .bind(&ids)
        .bind(&intents)
        .bind(&corrected)
        .bind(now)
        .execute(&mut *self)
        .await?;
        sqlx::query(&format!(
            "{RELABELLED_CONVERSATIONS}(SELECT UNNEST($1::int8[])))"
        ))
        .bind(&ids)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn mark_conversations(&mut self, marks: &[Mark], now: Timestamp) -> sqlx::Result<u64> {
        let done = sqlx::query(
            "UPDATE conversation_logs SET review_status = v.status, sample_id = v.sample_id, \
             processed_at = $1 \
             FROM UNNEST($2::int8[], $3::text[], $4::int8[]) AS v(id, status, sample_id) \
             WHERE conversation_logs.id = v.id",
        )
        .bind(now)
        .bind(marks.iter().map(|m| m.id).collect::<Vec<_>>())
        .bind(marks.iter().map(|m| m.status.as_str()).collect::<Vec<_>>())
        .bind(marks.iter().map(|m| m.sample_id).collect::<Vec<_>>())
        .execute(self)
        .await?;
        Ok(done.rows_affected())
    }

    async fn link_reviews(&mut self, marks: &[Mark]) -> sqlx::Result<()> {
        let (conversations, samples): (Vec<i64>, Vec<i64>) = review_links(marks).unzip();
        if conversations.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO review_links (conversation_id, sample_id) \
             SELECT * FROM UNNEST($1::int8[], $2::int8[]) \
             ON CONFLICT (conversation_id) DO UPDATE SET sample_id = excluded.sample_id",
        )
        .bind(conversations)
        .bind(samples)
        .execute(self)
        .await?;
        Ok(())
    }

    /// A batch lost to a server crash right after its commit is still
    /// `pending` and the next run takes it (daily capture is idempotent),
    /// so no need to wait for the WAL flush of every one of a
    /// million-row window's batches.
    async fn prepare_capture_batch(&mut self) -> sqlx::Result<()> {
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *self)
            .await
            .map(|_| ())
    }

    async fn mark_used(&mut self, version: &str, now: Timestamp, ids: &[i64]) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE training_samples SET model_version_target = $1, updated_at = $2 \
             WHERE model_version_target IS NULL AND review_status = 'approved' \
               AND id = ANY($3)",
        )
        .bind(version)
        .bind(now)
        .bind(ids)
        .execute(&mut *self)
        .await
        .map(|_| ())
    }

    async fn pending(&mut self, span: &PendingSpan) -> sqlx::Result<Vec<PendingConversation>> {
        sqlx::query_as::<_, PendingConversation>(&format!(
            "SELECT {PENDING_COLUMNS} FROM conversation_logs \
             WHERE id > $3 AND id <= $4 AND review_status = 'pending' \
               AND created_at >= $1 AND created_at < $2 \
             ORDER BY id LIMIT $5"
        ))
        .bind(span.start)
        .bind(span.end)
        .bind(span.after_id)
        .bind(span.max_id)
        .bind(span.limit)
        .fetch_all(&mut *self)
        .await
    }

    async fn approved_samples_page(
        &mut self,
        page: &ApprovedPage<'_>,
    ) -> sqlx::Result<Vec<ExportRow>> {
        let mut markers = Markers {
            postgres: true,
            next: 0,
        };
        let sql = approved_page_sql(page.filter, &mut markers);
        let mut query = sqlx::query_as::<_, ExportRow>(&sql).bind(page.after_id);
        if let Some(min) = page.filter.min_confidence {
            query = query.bind(min);
        }
        for language in &page.filter.languages {
            query = query.bind(language);
        }
        query.bind(page.limit).fetch_all(&mut *self).await
    }

    async fn fold_counter_shards(&mut self) -> sqlx::Result<u64> {
        // A shard is a backend's pid: one no longer in pg_stat_activity
        // writes no more (a new backend reusing the pid only adds to it,
        // and the DELETE then takes the row as that backend committed it).
        let gone = "c.shard <> 0 AND NOT EXISTS \
                    (SELECT 1 FROM pg_stat_activity a WHERE a.pid = c.shard)";
        let mut folded = 0;
        for (table, key, count) in [
            ("capture_counts", "minute, dimension, value", "captures"),
            ("sample_counts", "review_status, priority", "samples"),
        ] {
            let fold = format!(
                "WITH gone AS (DELETE FROM {table} c WHERE {gone} RETURNING {key}, {count}) \
                 INSERT INTO {table} ({key}, shard, {count}) \
                 SELECT {key}, 0, SUM({count}) FROM gone GROUP BY {key} ORDER BY {key} \
                 ON CONFLICT ({key}, shard) DO UPDATE SET {count} = {table}.{count} + excluded.{count}"
            );
            folded += sqlx::query(&fold)
                .execute(&mut *self)
                .await?
                .rows_affected();
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE shard = 0 AND {count} = 0"
            ))
            .execute(&mut *self)
            .await?;
        }
        Ok(folded)
    }
}

impl ExclusiveBegin for PgPool {
    type Database = Postgres;
    async fn begin_exclusive(&self, key: i64) -> sqlx::Result<Transaction<'static, Postgres>> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn begin_writing(&self) -> sqlx::Result<Transaction<'static, Postgres>> {
        self.begin().await
    }
}
