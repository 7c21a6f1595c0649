//! Label Studio answers on arbitrary bytes: the task-page decoder the sync
//! reads annotations with, then the decision rules on whatever decodes,
//! and the project and user shapes. Every annotated task gets a decision.
#![no_main]

use flywheel::review::label_studio::{Project, User, decide, decode_task_page};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((tasks, _total)) = decode_task_page(data) {
        for task in &tasks {
            let decision = decide(task, "order_food", |i| i == "greet" || i == "order_food");
            assert_eq!(decision.is_some(), !task.annotations.is_empty());
            if let Some(d) = decision {
                assert!(task.annotations.iter().any(|a| a.id == d.annotation_id));
                assert_eq!(d.annotations, task.annotations.len());
            }
        }
    }
    let _ = serde_json::from_slice::<Project>(data);
    let _ = serde_json::from_slice::<User>(data);
});
