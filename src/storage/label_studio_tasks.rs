//! `label_studio_tasks`: which sample became which Label Studio task. This
//! is what makes a sync idempotent: a push is reserved (`pushing`) before
//! the import call and confirmed (`pushed`, with the task id) after it, so a
//! crash in between leaves a row that the next run reconciles against Label
//! Studio by our sample id instead of pushing again.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, Timestamp, db_error, on_pool};
use crate::error::{Error, Result};

/// The watermark's text: microseconds, fixed width (text order is time
/// order on both backends).
const WATERMARK_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// What a [`TaskLink`] is read from (then a `WHERE`).
const TASK_LINK_COLUMNS: &str = "sample_id, task_id, sync_state, last_annotation_id, \
     last_annotation_updated_at FROM label_studio_tasks";

/// Our record of one task.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TaskLink {
    pub sample_id: i64,
    pub task_id: Option<i64>,
    pub sync_state: String,
    pub last_annotation_id: Option<i64>,
    pub last_annotation_updated_at: Option<Timestamp>,
}

/// A task of the project awaiting its annotation, and the order score
/// Label Studio holds for it ([`crate::review::rescore`]).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PushedTask {
    pub sample_id: i64,
    pub task_id: i64,
    /// `None`: none yet, or being replaced.
    pub order_score: Option<f64>,
}

/// Counts for the console's Label Studio pane.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TaskCounts {
    pub pushed: i64,
    pub awaiting: i64,
    pub annotated: i64,
    pub in_flight: i64,
}

impl Store {
    /// Record that these samples are about to be imported (state `pushing`).
    pub async fn reserve_pushes(&self, project: i64, sample_ids: &[i64]) -> Result<()> {
        on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            for id in sample_ids {
                sqlx::query(
                    "INSERT INTO label_studio_tasks (sample_id, project_id, sync_state) VALUES ($1, $2, 'pushing') \
                     ON CONFLICT (project_id, sample_id) DO NOTHING",
                )
                .bind(id)
                .bind(project)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await)
        .map_err(|err| db_error("reserving pushes", err))
    }

    /// Samples whose push outcome is unknown (a crash between import and commit).
    pub async fn unconfirmed_pushes(&self, project: i64) -> Result<Vec<i64>> {
        on_pool!(self, |pool| sqlx::query_scalar::<_, i64>(
            "SELECT sample_id FROM label_studio_tasks WHERE project_id = $1 AND sync_state = 'pushing' ORDER BY sample_id"
        )
        .bind(project)
        .fetch_all(pool)
        .await)
        .map_err(|err| db_error("reading unconfirmed pushes", err))
    }

    /// Confirm pushes with their task ids and move the samples to `in-review`,
    /// in one transaction.
    pub async fn confirm_pushes(&self, project: i64, pushed: &[(i64, i64)]) -> Result<()> {
        let now = Timestamp::now();
        on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            for (sample_id, task_id) in pushed {
                sqlx::query(
                    "UPDATE label_studio_tasks SET task_id = $3, pushed_at = $4, sync_state = 'pushed', error = NULL \
                     WHERE project_id = $1 AND sample_id = $2",
                )
                .bind(project)
                .bind(sample_id)
                .bind(task_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE training_samples SET review_status = 'in-review', updated_at = $2 \
                     WHERE id = $1 AND review_status = 'needs-review'",
                )
                .bind(sample_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await)
        .map_err(|err| db_error("recording pushed tasks", err))
    }

    /// Forget reservations whose import certainly did not happen, so the
    /// samples are pushed again next time.
    pub async fn release_pushes(&self, project: i64, sample_ids: &[i64]) -> Result<()> {
        on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            for id in sample_ids {
                sqlx::query(
                    "DELETE FROM label_studio_tasks WHERE project_id = $1 AND sample_id = $2 AND sync_state = 'pushing'",
                )
                .bind(project)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await)
        .map_err(|err| db_error("releasing pushes", err))
    }

    /// Our record of a task, by Label Studio task id.
    pub async fn task_link(&self, project: i64, task_id: i64) -> Result<Option<TaskLink>> {
        let sql = format!("SELECT {TASK_LINK_COLUMNS} WHERE project_id = $1 AND task_id = $2");
        on_pool!(self, |pool| sqlx::query_as::<_, TaskLink>(&sql)
            .bind(project)
            .bind(task_id)
            .fetch_optional(pool)
            .await)
        .map_err(|err| db_error("reading a task link", err))
    }

    /// Remember the annotation we applied, so a later pull only re-applies
    /// it when Label Studio says it changed.
    pub async fn record_annotation(
        &self,
        project: i64,
        task_id: i64,
        annotation_id: Option<i64>,
        updated_at: Timestamp,
    ) -> Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "UPDATE label_studio_tasks SET last_annotation_id = $3, last_annotation_updated_at = $4, \
             sync_state = 'annotated' WHERE project_id = $1 AND task_id = $2"
        )
        .bind(project)
        .bind(task_id)
        .bind(annotation_id)
        .bind(updated_at)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|err| db_error("recording an annotation", err))
    }

    /// The newest annotation time seen in `project`: where the next pull starts.
    pub async fn pull_watermark(&self, project: i64) -> Result<Option<Timestamp>> {
        on_pool!(self, |pool| sqlx::query_scalar::<_, Option<Timestamp>>(
            "SELECT MAX(last_annotation_updated_at) FROM label_studio_tasks WHERE project_id = $1"
        )
        .bind(project)
        .fetch_one(pool)
        .await)
        .map_err(|err| db_error("reading the pull watermark", err))
    }

    /// Where the next pull of `project` starts: the highest task
    /// `updated_at` a completed pull has read (Label Studio's clock), or
    /// `None` before the first one.
    pub async fn task_watermark(&self, project: i64) -> Result<Option<DateTime<Utc>>> {
        let text: Option<String> = on_pool!(self, |pool| sqlx::query_scalar::<_, String>(
            "SELECT task_watermark FROM label_studio_pulls WHERE project_id = $1"
        )
        .bind(project)
        .fetch_optional(pool)
        .await)
        .map_err(|err| db_error("reading the Label Studio pull watermark", err))?;
        text.map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|err| {
                    Error::failure(format!(
                        "label_studio_pulls holds {t:?} for project {project}, not a time ({err}); \
                         delete that row and the next pull reads the whole project once"
                    ))
                })
        })
        .transpose()
    }

    /// Record a completed pull of `project` that read tasks up to
    /// `watermark`. The watermark only moves forward (two pulls at once
    /// cannot move it back).
    pub async fn advance_task_watermark(
        &self,
        project: i64,
        watermark: DateTime<Utc>,
    ) -> Result<()> {
        let text = watermark.format(WATERMARK_FORMAT).to_string();
        let now = Timestamp::now();
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO label_studio_pulls (project_id, task_watermark, pulled_at) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id) DO UPDATE SET pulled_at = excluded.pulled_at, \
               task_watermark = CASE WHEN excluded.task_watermark > label_studio_pulls.task_watermark \
                 THEN excluded.task_watermark ELSE label_studio_pulls.task_watermark END"
        )
        .bind(project)
        .bind(&text)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|err| db_error("recording the Label Studio pull watermark", err))
    }

    /// Our records of the tasks whose last applied annotation is one of
    /// `annotation_ids` (a webhook says they were deleted).
    pub async fn task_links_by_annotation(
        &self,
        project: i64,
        annotation_ids: &[i64],
    ) -> Result<Vec<TaskLink>> {
        let sql =
            format!("SELECT {TASK_LINK_COLUMNS} WHERE project_id = $1 AND last_annotation_id = $2");
        let mut links = Vec::new();
        for id in annotation_ids {
            let found = on_pool!(self, |pool| sqlx::query_as::<_, TaskLink>(&sql)
                .bind(project)
                .bind(id)
                .fetch_all(pool)
                .await)
            .map_err(|err| db_error("reading task links by annotation", err))?;
            links.extend(found);
        }
        Ok(links)
    }

    pub async fn label_studio_task_counts(&self, project: i64) -> Result<TaskCounts> {
        let (pushed, awaiting, annotated, in_flight): (i64, i64, i64, i64) =
            on_pool!(self, |pool| {
                sqlx::query_as(
                    "SELECT COUNT(task_id), COUNT(CASE WHEN sync_state = 'pushed' THEN 1 END), \
                        COUNT(CASE WHEN sync_state = 'annotated' THEN 1 END), \
                        COUNT(CASE WHEN sync_state = 'pushing' THEN 1 END) \
                 FROM label_studio_tasks WHERE project_id = $1",
                )
                .bind(project)
                .fetch_one(pool)
                .await
            })
            .map_err(|err| db_error("counting Label Studio tasks", err))?;
        Ok(TaskCounts {
            pushed,
            awaiting,
            annotated,
            in_flight,
        })
    }

    /// Tasks of `project` pushed and not yet annotated.
    pub async fn pushed_tasks(&self, project: i64) -> Result<Vec<PushedTask>> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, PushedTask>(
                "SELECT sample_id, task_id, order_score FROM label_studio_tasks \
                 WHERE project_id = $1 AND sync_state = 'pushed' AND task_id IS NOT NULL",
            )
            .bind(project)
            .fetch_all(pool)
            .await
        })
        .map_err(|err| db_error("reading the tasks waiting in Label Studio", err))
    }

    /// Record the order scores Label Studio now holds for `project`'s
    /// tasks (`None`: none, as while they are being replaced).
    pub async fn set_order_scores(
        &self,
        project: i64,
        scores: &[(i64, Option<f64>)],
    ) -> Result<()> {
        on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            for (task_id, score) in scores {
                sqlx::query(
                    "UPDATE label_studio_tasks SET order_score = $3 WHERE project_id = $1 AND task_id = $2",
                )
                .bind(project)
                .bind(task_id)
                .bind(score)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await)
        .map_err(|err| db_error("recording the review order sent to Label Studio", err))
    }

    /// Every intent any sample carries: the choices the project must offer.
    pub async fn sample_intents(&self) -> Result<Vec<String>> {
        on_pool!(self, |pool| sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT intent FROM training_samples ORDER BY intent"
        )
        .fetch_all(pool)
        .await)
        .map_err(|err| db_error("reading sample intents", err))
    }

    /// The project of the most recent push, when no project is configured.
    pub async fn latest_label_studio_project(&self) -> Result<Option<i64>> {
        on_pool!(self, |pool| sqlx::query_scalar::<_, i64>(
            "SELECT project_id FROM label_studio_tasks ORDER BY id DESC LIMIT 1"
        )
        .fetch_optional(pool)
        .await)
        .map_err(|err| db_error("reading the Label Studio project", err))
    }
}
