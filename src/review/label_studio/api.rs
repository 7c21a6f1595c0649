//! The Label Studio calls the sync stage and `doctor` need, one method each.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::LabelStudioClient;
use super::http::Call;
use super::types::{
    NewTask, Project, TaskPrediction, TaskWithAnnotations, User, WireImportAnswer, WireNewTask,
    WireTask, WireTaskPage, WireTaskPrediction,
};
use super::webhook::{WEBHOOK_ACTIONS, WEBHOOK_SECRET_HEADER};
use crate::error::{Error, Result};

/// What [`LabelStudioClient::ensure_webhook`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookRegistration {
    Created,
    Updated,
    Unchanged,
}

/// Tasks per page when reading tasks back.
const PAGE_SIZE: usize = 500;
/// Sample ids per lookup request: they travel in the URL's query string
/// (~10 bytes each once encoded), which proxies cap at a few KB.
const LOOKUP_CHUNK: usize = 200;

/// How much of each task to read: annotations make a page twice as slow.
#[derive(Clone, Copy)]
enum Fields {
    All,
    TaskOnly,
}

impl Fields {
    fn as_str(self) -> &'static str {
        match self {
            Fields::All => "all",
            Fields::TaskOnly => "task_only",
        }
    }
}

/// Tasks or predictions per call when re-scoring the review order.
const ORDER_CHUNK: usize = 1000;

/// The project `sampling` under which the labelling stream serves unsolved
/// tasks lowest prediction score first, among the predictions of the
/// project's `model_version` (DESIGN §11; Label Studio 1.23.2
/// `projects/functions/next_task.py`).
pub const UNCERTAINTY_SAMPLING: &str = "Uncertainty sampling";

/// The one stable prediction version whose scores carry the product's review
/// order (rank-like: lower is sooner).
pub const REVIEW_ORDER_VERSION: &str = "flywheel-review-order";

/// The `filter:tasks:updated_at` value format. Anything else makes Label
/// Studio answer 500 (§11); `%.6f` is Python's `%f` (microseconds).
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// The Data Manager filter "updated after `since`".
fn updated_after(since: Option<DateTime<Utc>>) -> Option<Value> {
    since.map(|ts| {
        json!({"filter": "filter:tasks:updated_at", "operator": "greater",
               "type": "Datetime", "value": ts.format(TIMESTAMP_FORMAT).to_string()})
    })
}

fn project_not_found(id: i64) -> String {
    format!(
        "Label Studio project {id} not found; check LABEL_STUDIO_PROJECT_ID (or --project-id), or unset it to create a new project"
    )
}

impl LabelStudioClient {
    /// `GET /health`, unauthenticated: is the server up at all?
    pub async fn health(&self) -> Result<()> {
        let call = Call::new("check health (GET /health)", Method::GET, "health");
        let answer = self.execute_anonymous(&call).await?;
        self.expect_success(&call, &answer)
    }

    /// The key's user: a cheap check that the key works (`doctor`).
    pub async fn whoami(&self) -> Result<User> {
        self.call(Call::new(
            "identify the key's user (GET /api/current-user/whoami)",
            Method::GET,
            "api/current-user/whoami",
        ))
        .await
    }

    /// Create a project and return its id. Titles are not unique in Label
    /// Studio: store the id, never look a project up by title.
    pub async fn create_project(&self, title: &str, label_config: &str) -> Result<i64> {
        let call = Call::new(
            format!("create project {title:?} (POST /api/projects)"),
            Method::POST,
            "api/projects",
        )
        .json(&json!({
            "title": title,
            "label_config": label_config,
            // Annotators start from the model's prediction.
            "show_collab_predictions": true,
        }));
        let project: Project = self.call(call).await?;
        Ok(project.id)
    }

    pub async fn get_project(&self, id: i64) -> Result<Project> {
        self.call(
            Call::new(
                format!("read project {id}"),
                Method::GET,
                format!("api/projects/{id}"),
            )
            .not_found(project_not_found(id)),
        )
        .await
    }

    /// Replace the project's label config (e.g. with new intents added).
    /// Label Studio refuses (400) a config that invalidates existing
    /// annotations, so only ever add choices.
    pub async fn update_label_config(&self, id: i64, label_config: &str) -> Result<()> {
        self.call_unit(
            Call::new(
                format!("update the label config of project {id}"),
                Method::PATCH,
                format!("api/projects/{id}"),
            )
            .json(&json!({ "label_config": label_config }))
            .not_found(project_not_found(id)),
        )
        .await
    }

    /// Annotators only see predictions whose `model_version` equals the
    /// project's: set it when the production model changes. Label Studio
    /// 1.23.2 refuses (400) a version that no prediction in the project
    /// carries yet, so call this after importing tasks predicted by it.
    pub async fn set_project_model_version(&self, id: i64, model_version: &str) -> Result<()> {
        self.call_unit(
            Call::new(
                format!("set the model version of project {id} to {model_version:?}"),
                Method::PATCH,
                format!("api/projects/{id}"),
            )
            .json(&json!({ "model_version": model_version }))
            .not_found(project_not_found(id)),
        )
        .await
    }

    /// Serve the labelling stream in the order of `model_version`'s
    /// prediction scores, lowest first. Label Studio refuses (400) a version
    /// no prediction in the project carries yet.
    pub async fn set_review_order(&self, id: i64, model_version: &str) -> Result<()> {
        self.call_unit(
            Call::new(
                format!("make project {id} serve tasks in the order of {model_version:?} scores"),
                Method::PATCH,
                format!("api/projects/{id}"),
            )
            .json(&json!({ "sampling": UNCERTAINTY_SAMPLING, "model_version": model_version }))
            .not_found(project_not_found(id)),
        )
        .await
    }

    /// Delete every prediction of `task_ids` (the Data Manager's
    /// `delete_tasks_predictions` action; task timestamps do not move, so
    /// the pull does not read them again).
    pub async fn delete_predictions(&self, project: i64, task_ids: &[i64]) -> Result<()> {
        for chunk in task_ids.chunks(ORDER_CHUNK) {
            self.call_unit(
                Call::new(
                    format!(
                        "delete the predictions of {} tasks in project {project}",
                        chunk.len()
                    ),
                    Method::POST,
                    "api/dm/actions/",
                )
                .query("id", "delete_tasks_predictions")
                .query("project", project)
                .json(&json!({ "selectedItems": { "all": false, "included": chunk } }))
                .not_found(project_not_found(project)),
            )
            .await?;
        }
        Ok(())
    }

    /// Add predictions to tasks already in `project`.
    pub async fn import_predictions(
        &self,
        project: i64,
        predictions: &[TaskPrediction],
    ) -> Result<()> {
        for chunk in predictions.chunks(ORDER_CHUNK) {
            let wire: Vec<WireTaskPrediction<'_>> =
                chunk.iter().map(WireTaskPrediction::from).collect();
            let call = Call::new(
                format!("import {} predictions into project {project}", chunk.len()),
                Method::POST,
                format!("api/projects/{project}/import/predictions"),
            )
            .json(&wire)
            .not_found(project_not_found(project));
            // Predictions Label Studio finds invalid are dropped with a 201.
            let answer: Value = self.call(call).await?;
            let created = answer["created"].as_u64();
            if created != Some(chunk.len() as u64) {
                return Err(Error::unavailable(format!(
                    "Label Studio created {} of {} predictions in project {project}",
                    created.map_or("an unknown number".into(), |n| n.to_string()),
                    chunk.len()
                )));
            }
        }
        Ok(())
    }

    /// Import one batch of tasks (all or nothing) and return their task ids
    /// in input order. Not idempotent: after an error whose outcome is
    /// unknown, look the samples up with [`Self::find_tasks_by_sample_ids`]
    /// before importing them again.
    pub async fn import_tasks(&self, project: i64, tasks: &[NewTask]) -> Result<Vec<i64>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let wire: Vec<WireNewTask<'_>> = tasks.iter().map(WireNewTask::from).collect();
        let call = Call::new(
            format!("import {} tasks into project {project}", tasks.len()),
            Method::POST,
            format!("api/projects/{project}/import"),
        )
        .query("return_task_ids", "true")
        .json(&wire)
        .not_found(project_not_found(project));
        let answer: WireImportAnswer = self.call(call).await?;
        let ids = answer.task_ids.unwrap_or_default();
        if ids.len() != tasks.len() {
            return Err(Error::unavailable(format!(
                "Label Studio imported {} tasks into project {project} but returned {} task ids for {} tasks; reconcile by sample id",
                answer.task_count.unwrap_or(-1),
                ids.len(),
                tasks.len()
            )));
        }
        Ok(ids)
    }

    /// Which of `sample_ids` already have a task in `project`, by the
    /// `sample_id` we store in task data (task ids can be reused after
    /// deletions, §11). Should a sample have several tasks (an import
    /// repeated by hand), the oldest one is returned.
    pub async fn find_tasks_by_sample_ids(
        &self,
        project: i64,
        sample_ids: &[i64],
    ) -> Result<HashMap<i64, i64>> {
        let mut found = HashMap::new();
        for chunk in sample_ids.chunks(LOOKUP_CHUNK) {
            // `in_list` is one SQL `IN`: 5x faster than OR-ing `equal` items
            // (1000 ids among 10 000 tasks: 14 s against 79 s on a loaded
            // machine). Only ids and data are needed, so skip annotations.
            let filters = json!({"conjunction": "and", "items": [{
                "filter": "filter:tasks:data.sample_id", "operator": "in_list",
                "type": "Number", "value": chunk,
            }]});
            let what = format!("look up {} sample ids in project {project}", chunk.len());
            for task in self
                .list_tasks(project, filters, Fields::TaskOnly, &what)
                .await?
            {
                if let Some(sample) = task.sample_id {
                    // Pages are in id order: the first seen is the oldest.
                    found.entry(sample).or_insert(task.id);
                }
            }
        }
        Ok(found)
    }

    /// Tasks of `project` whose `updated_at` is after `since` (all tasks when
    /// `None`), with their annotations. A task's `updated_at` moves when an
    /// annotation is created, updated, deleted or skipped.
    pub async fn tasks_updated_since(
        &self,
        project: i64,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<TaskWithAnnotations>> {
        let items: Vec<Value> = updated_after(since).into_iter().collect();
        let filters = json!({"conjunction": "and", "items": items});
        let what = match since {
            Some(ts) => format!("list tasks of project {project} updated since {ts}"),
            None => format!("list tasks of project {project}"),
        };
        self.list_tasks(project, filters, Fields::All, &what).await
    }

    /// What the pull reads: [`Self::tasks_updated_since`] narrowed to tasks
    /// with at least one annotation (a skip counts), in id order. Label
    /// Studio 1.23.2 leaves `updated_at` alone when predictions are
    /// bulk-imported or deleted by the Data Manager, as re-ranking does, so
    /// only annotators move it after the import. Tasks nobody has annotated
    /// are not read at all: the pull finds nothing to apply in them, and
    /// they are most of a project (the tasks just pushed, too). The filters
    /// of one query are all AND-ed or all OR-ed, so "annotated or skipped"
    /// takes two queries.
    pub async fn annotated_tasks_updated_since(
        &self,
        project: i64,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<TaskWithAnnotations>> {
        let what = match since {
            Some(ts) => format!("list annotated tasks of project {project} updated since {ts}"),
            None => format!("list annotated tasks of project {project}"),
        };
        let mut tasks: Vec<TaskWithAnnotations> = Vec::new();
        for counter in ["total_annotations", "cancelled_annotations"] {
            let annotated = json!({"filter": format!("filter:tasks:{counter}"),
                                   "operator": "greater", "type": "Number", "value": 0});
            let items: Vec<Value> = updated_after(since)
                .into_iter()
                .chain([annotated])
                .collect();
            let filters = json!({"conjunction": "and", "items": items});
            tasks.extend(
                self.list_tasks(project, filters, Fields::All, &what)
                    .await?,
            );
        }
        // A task with both annotations and skips comes twice.
        tasks.sort_by_key(|t| t.id);
        tasks.dedup_by_key(|t| t.id);
        Ok(tasks)
    }

    /// Make sure `project` has one webhook to `url` for the review actions,
    /// sending `secret` in [`WEBHOOK_SECRET_HEADER`]: created when missing,
    /// brought up to date when it differs, left alone otherwise (so a
    /// sync every few hours does not pile up webhooks). Label Studio
    /// refuses (400) loopback targets unless it runs with
    /// `SSRF_PROTECTION_ENABLED=false` (§11). Returns what it did.
    pub async fn ensure_webhook(
        &self,
        project: i64,
        url: &str,
        secret: &str,
    ) -> Result<WebhookRegistration> {
        let wanted = json!({
            "project": project,
            "url": url,
            "send_payload": true,
            "send_for_all_actions": false,
            "actions": WEBHOOK_ACTIONS,
            "headers": { WEBHOOK_SECRET_HEADER: secret },
            "is_active": true,
        });
        let existing: Vec<Value> = self
            .call(
                Call::new(
                    format!("list the webhooks of project {project}"),
                    Method::GET,
                    "api/webhooks/",
                )
                .query("project", project)
                .not_found(project_not_found(project)),
            )
            .await?;
        let ours = existing
            .iter()
            .find(|w| w["url"] == url && w["project"] == project);
        let Some(ours) = ours else {
            self.call_unit(
                Call::new(
                    format!("register the review webhook of project {project}"),
                    Method::POST,
                    "api/webhooks/",
                )
                .json(&wanted),
            )
            .await?;
            return Ok(WebhookRegistration::Created);
        };
        let mut actions: Vec<&str> = ours["actions"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        actions.sort_unstable();
        let mut expected = WEBHOOK_ACTIONS.to_vec();
        expected.sort_unstable();
        let same = ours["headers"][WEBHOOK_SECRET_HEADER] == secret
            && ours["is_active"] == true
            && ours["send_payload"] == true
            && actions == expected;
        if same {
            return Ok(WebhookRegistration::Unchanged);
        }
        let id = ours["id"].as_i64().unwrap_or_default();
        // Label Studio 1.23.2 drops a webhook's actions on any update that
        // does not list them, so the whole wanted state is sent. The
        // project of a webhook cannot be changed (read-only on update).
        let mut update = wanted;
        update.as_object_mut().map(|o| o.remove("project"));
        self.call_unit(
            Call::new(
                format!("update review webhook {id} of project {project}"),
                Method::PATCH,
                format!("api/webhooks/{id}/"),
            )
            .json(&update),
        )
        .await?;
        Ok(WebhookRegistration::Updated)
    }

    /// Page through `GET /api/tasks` with a data-manager filter, in id order.
    async fn list_tasks(
        &self,
        project: i64,
        filters: Value,
        fields: Fields,
        what: &str,
    ) -> Result<Vec<TaskWithAnnotations>> {
        let query = json!({"filters": filters, "ordering": ["tasks:id"]}).to_string();
        let mut tasks = Vec::new();
        for page in 1.. {
            let call = Call::new(format!("{what} (page {page})"), Method::GET, "api/tasks")
                .query("project", project)
                .query("page", page)
                .query("page_size", PAGE_SIZE)
                .query("fields", fields.as_str())
                .query("query", &query);
            let answer = self.execute(&call).await?;
            // Paging past the end answers 404 "Invalid page." (§11).
            if answer.status == StatusCode::NOT_FOUND && page > 1 {
                break;
            }
            if answer.status == StatusCode::NOT_FOUND
                && self.detail(&answer.body).contains("Invalid page")
            {
                break;
            }
            let call = call.not_found(project_not_found(project));
            self.expect_success(&call, &answer)?;
            let body: WireTaskPage = self.parse(&call, &answer)?;
            let n = body.tasks.len();
            tasks.extend(body.tasks.into_iter().map(WireTask::into_task));
            let total = body.total.map(|t| t as usize);
            if n < PAGE_SIZE || total.is_some_and(|t| tasks.len() >= t) {
                break;
            }
        }
        Ok(tasks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_use_microseconds_like_python_strftime() {
        let ts = Utc.with_ymd_and_hms(2026, 11, 25, 1, 2, 3).unwrap()
            + chrono::Duration::nanoseconds(456_789_123);
        assert_eq!(
            ts.format(TIMESTAMP_FORMAT).to_string(),
            "2026-11-25T01:02:03.456789Z"
        );
    }
}
