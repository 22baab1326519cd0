//! OCSP answers per second and the share served from precomputed responses
//! over the last hour, for the operator console: the process's own
//! Prometheus counters, sampled every [`OcspRates::INTERVAL_SECS`] seconds
//! into a ring of fixed size (Prometheus itself keeps the long history).

use prometheus::Registry;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// When (Unix seconds).
    pub at: u64,
    /// Every OCSP answer so far (`custos_ocsp_responses_total`).
    pub answers: u64,
    /// Those served precomputed (`custos_ocsp_precomputed_hits_total`).
    pub precomputed: u64,
}

/// What happened between two samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatePoint {
    /// The end of the interval (Unix seconds).
    pub at: u64,
    /// Answers per second.
    pub per_second: f64,
    /// The share of them served precomputed (`None`: no answers).
    pub hit_ratio: Option<f64>,
}

/// The last hour of samples.
#[derive(Debug, Default)]
pub struct OcspRates {
    samples: Mutex<VecDeque<Sample>>,
}

impl OcspRates {
    /// Seconds between samples.
    pub const INTERVAL_SECS: u64 = 15;
    /// Samples kept: one hour.
    const KEEP: usize = 3600 / Self::INTERVAL_SECS as usize + 1;

    /// Adds a sample, dropping the oldest past an hour.
    pub fn record(&self, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() >= Self::KEEP {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The counters in `registry` now.
    pub fn read(registry: &Registry, at: u64) -> Sample {
        let mut sample = Sample {
            at,
            answers: 0,
            precomputed: 0,
        };
        for family in registry.gather() {
            let slot = match family.name() {
                "custos_ocsp_responses_total" => &mut sample.answers,
                "custos_ocsp_precomputed_hits_total" => &mut sample.precomputed,
                _ => continue,
            };
            for m in &family.metric {
                *slot += m.counter.value() as u64;
            }
        }
        sample
    }

    /// The rate between each pair of consecutive samples, oldest first.
    pub fn points(&self) -> Vec<RatePoint> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples
            .iter()
            .zip(samples.iter().skip(1))
            .filter(|(a, b)| b.at > a.at)
            .map(|(a, b)| {
                let answers = b.answers.saturating_sub(a.answers);
                let hits = b.precomputed.saturating_sub(a.precomputed);
                RatePoint {
                    at: b.at,
                    per_second: answers as f64 / (b.at - a.at) as f64,
                    hit_ratio: (answers > 0).then(|| hits.min(answers) as f64 / answers as f64),
                }
            })
            .collect()
    }

    /// Samples `registry` until `shutdown`.
    pub async fn run(self: Arc<Self>, registry: Registry, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(Self::INTERVAL_SECS));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    self.record(Self::read(&registry, crate::model::time::unix_now()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_between_samples_and_a_bounded_ring() {
        let rates = OcspRates::default();
        rates.record(Sample {
            at: 0,
            answers: 0,
            precomputed: 0,
        });
        rates.record(Sample {
            at: 15,
            answers: 150,
            precomputed: 120,
        });
        rates.record(Sample {
            at: 30,
            answers: 150,
            precomputed: 120,
        });
        let points = rates.points();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].per_second, 10.0);
        assert_eq!(points[0].hit_ratio, Some(0.8));
        assert_eq!(points[1].per_second, 0.0);
        assert_eq!(points[1].hit_ratio, None);
        for i in 0..1000 {
            rates.record(Sample {
                at: 45 + i,
                answers: 0,
                precomputed: 0,
            });
        }
        assert_eq!(rates.points().len(), OcspRates::KEEP - 1);
    }

    #[test]
    fn reads_the_responder_counters() {
        let registry = Registry::new();
        let answers = prometheus::IntCounterVec::new(
            prometheus::Opts::new("custos_ocsp_responses_total", "x"),
            &["status"],
        )
        .unwrap();
        registry.register(Box::new(answers.clone())).unwrap();
        answers.with_label_values(&["good"]).inc_by(3);
        answers.with_label_values(&["revoked"]).inc_by(2);
        let s = OcspRates::read(&registry, 7);
        assert_eq!((s.at, s.answers, s.precomputed), (7, 5, 0));
    }
}
