use flywheel::dataset::Sample;
use flywheel::progress::Reporter;
use flywheel::router::TrainParams;
use flywheel::suspects::{self, Judged};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

#[test]
fn scratch() {
    let text = std::fs::read_to_string("/work/shared/data/clinc150_train.jsonl").unwrap();
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        by.entry(v["intent"].as_str().unwrap().to_string()).or_default().push(v["text"].as_str().unwrap().to_string());
    }
    let intents: Vec<String> = by.keys().filter(|k| *k != "oos").take(40).cloned().collect();
    let mut samples = Vec::new();
    let mut truth = Vec::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    for intent in &intents {
        for t in by[intent].iter().take(40) {
            let mut label = intent.clone();
            let flipped = rng.random::<f64>() < 0.1;
            if flipped {
                loop { let o = &intents[rng.random_range(0..intents.len())]; if o != intent { label = o.clone(); break; } }
            }
            samples.push(Sample::new(t.clone(), label));
            truth.push(flipped);
        }
    }
    let epochs: u32 = std::env::var("EP").ok().and_then(|e| e.parse().ok()).unwrap_or(20);
    let params = TrainParams { epochs, ..TrainParams::default() };
    let t0 = std::time::Instant::now();
    let oof = suspects::out_of_fold(&samples, 5, &params, &Reporter::silent()).unwrap();
    eprintln!("oof {:?}", t0.elapsed());
    let judged: Vec<Judged> = samples.iter().zip(&oof).map(|(s, p)| Judged { label: &s.intent, flaggable: true, predicted: p }).collect();
    let flags = suspects::flag(&judged);
    let flipped = truth.iter().filter(|t| **t).count();
    let hits = flags.iter().filter(|f| truth[f.index]).count();
    let top = flags.iter().take(100).filter(|f| truth[f.index]).count();
    eprintln!("flipped {flipped} flags {} hits {hits} recall {:.3} p@100 {:.2} precision all {:.3}", flags.len(), hits as f64/flipped as f64, top as f64/100.0, hits as f64 / flags.len() as f64);
}
