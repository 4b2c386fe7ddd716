//! What the global cases ask of tollgate-store: calls answered, failed, requests that waited
//! for a callout and fallbacks to `failure_mode`, from the store's and Envoy's metrics.

use tollgate_e2e::store::Store;
use tollgate_e2e::Envoy;

#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalCounts {
    /// Rate-limiting calls the store answered 200 (`/v1/check`, `/v1/lease`).
    pub calls: u64,
    /// Calls to any store endpoint answered otherwise (`/metrics` aside).
    pub failed: u64,
    /// Requests that waited for a store callout (Envoy: `tollgate_store_waited`).
    pub waited: u64,
    /// Requests decided by `failure_mode` (Envoy: `tollgate_failure_mode_used`).
    pub fallbacks: u64,
}

impl GlobalCounts {
    pub fn read(store: &Store, envoy: &Envoy) -> GlobalCounts {
        let mut counts = GlobalCounts::default();
        for line in store.get("/metrics").text().lines() {
            let Some(rest) = line.strip_prefix("tollgate_store_requests_total{") else { continue };
            let Some((labels, n)) = rest.split_once("} ") else { continue };
            let n: u64 = n.trim().parse().unwrap_or(0);
            if labels.contains("endpoint=\"/metrics\"") {
                continue;
            }
            if !(labels.contains("status=\"200\"") || labels.contains("status=\"304\"")) {
                counts.failed += n;
            } else if labels.contains("endpoint=\"/v1/check\"") || labels.contains("endpoint=\"/v1/lease\"") {
                counts.calls += n;
            }
        }
        let prom = envoy.prometheus();
        let value = |sample: &str| tollgate_e2e::prometheus_value(&prom, sample).unwrap_or(0.0) as u64;
        counts.waited = value("tollgate_store_waited{}");
        counts.fallbacks = value("tollgate_failure_mode_used{}");
        counts
    }

    pub fn since(&self, before: &GlobalCounts) -> GlobalCounts {
        GlobalCounts {
            calls: self.calls.saturating_sub(before.calls),
            failed: self.failed.saturating_sub(before.failed),
            waited: self.waited.saturating_sub(before.waited),
            fallbacks: self.fallbacks.saturating_sub(before.fallbacks),
        }
    }

    pub fn add(&mut self, other: &GlobalCounts) {
        self.calls += other.calls;
        self.failed += other.failed;
        self.waited += other.waited;
        self.fallbacks += other.fallbacks;
    }
}
