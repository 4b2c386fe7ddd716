//! Deploying Tollgate: the Docker Compose example, every Envoy config and the OCI packaging
//! (`packaging`), the Istio examples (`istio`), and the Prometheus alerts and Grafana
//! dashboard (`monitoring`).

mod istio;
mod monitoring;
mod packaging;
