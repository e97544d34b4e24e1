//! What the deployed functions did lately, from their metrics in CloudWatch (the EMF
//! documents they write become metrics there): for `s3-replicator status --cloudwatch`.

use std::time::Duration;

use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Metric, MetricDataQuery, MetricStat};
use serde::Serialize;

use crate::errors::describe;
use crate::metrics;

/// The functions' totals over a window.
#[derive(Debug, Serialize, Default, PartialEq)]
pub struct Recent {
    pub minutes: u64,
    pub replicated: f64,
    pub bytes: f64,
    pub failed: f64,
    pub replicated_per_s: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Why something is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn query(id: &str, name: &str, stat: &str, period: i32) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(metrics::NAMESPACE)
                        .metric_name(name)
                        .build(),
                )
                .period(period)
                .stat(stat)
                .build(),
        )
        .build()
}

fn values<'a>(out: &'a GetMetricDataOutput, id: &'a str) -> impl Iterator<Item = f64> + 'a {
    out.metric_data_results()
        .iter()
        .filter(move |r| r.id() == Some(id))
        .flat_map(|r| r.values().iter().copied())
}

/// The totals (the metrics without dimensions) over the last `window`: counts in one
/// query, latency percentiles in another, so a server without percentiles still gives
/// the counts (and a note).
pub async fn from_cloudwatch(
    cw: &aws_sdk_cloudwatch::Client,
    window: Duration,
) -> Result<Recent, String> {
    let seconds = window.as_secs().max(60);
    let period = (seconds.div_ceil(60) * 60) as i32;
    let now = std::time::SystemTime::now();
    let ask = |queries: Vec<MetricDataQuery>| {
        cw.get_metric_data()
            .set_metric_data_queries(Some(queries))
            .start_time(DateTime::from(now - Duration::from_secs(seconds)))
            .end_time(DateTime::from(now))
            .send()
    };
    let counts = ask(vec![
        query("replicated", metrics::REPLICATED, "Sum", period),
        query("bytes", metrics::BYTES, "Sum", period),
        query("failed", metrics::FAILED, "Sum", period),
    ])
    .await
    .map_err(|e| format!("CloudWatch GetMetricData: {}", describe(&e)))?;
    let mut recent = Recent {
        minutes: seconds / 60,
        replicated: values(&counts, "replicated").sum(),
        bytes: values(&counts, "bytes").sum(),
        failed: values(&counts, "failed").sum(),
        ..Recent::default()
    };
    recent.replicated_per_s = recent.replicated / seconds as f64;
    let latency = ask(vec![
        query("p50", metrics::LATENCY, "p50", period),
        query("p99", metrics::LATENCY, "p99", period),
    ])
    .await;
    match latency {
        Ok(out) => {
            recent.latency_p50_ms = values(&out, "p50").next();
            recent.latency_p99_ms = values(&out, "p99").next();
        }
        Err(e) => {
            recent.note = Some(format!("latency percentiles unavailable: {}", describe(&e)));
        }
    }
    Ok(recent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::types::MetricDataResult;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn result(id: &str, values: &[f64]) -> MetricDataResult {
        MetricDataResult::builder()
            .id(id)
            .set_values(Some(values.to_vec()))
            .build()
    }

    /// CloudWatch answers both queries: counts summed over the window, percentiles
    /// read, the rate from the window. A server that refuses percentiles (moto) still
    /// gives the counts, with a note.
    #[tokio::test]
    async fn counts_and_percentiles_come_from_their_own_queries() {
        let counts = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
            .match_requests(|r| {
                r.metric_data_queries()
                    .iter()
                    .any(|q| q.id() == Some("replicated"))
            })
            .then_output(|| {
                GetMetricDataOutput::builder()
                    .metric_data_results(result("replicated", &[600.0, 300.0]))
                    .metric_data_results(result("bytes", &[9000.0]))
                    .metric_data_results(result("failed", &[]))
                    .build()
            });
        let percentiles = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
            .match_requests(|r| {
                r.metric_data_queries()
                    .iter()
                    .any(|q| q.id() == Some("p99"))
            })
            .then_output(|| {
                GetMetricDataOutput::builder()
                    .metric_data_results(result("p50", &[120.0]))
                    .metric_data_results(result("p99", &[2400.0]))
                    .build()
            });
        let cw = mock_client!(
            aws_sdk_cloudwatch,
            RuleMode::MatchAny,
            [&counts, &percentiles]
        );
        let recent = from_cloudwatch(&cw, Duration::from_secs(15 * 60))
            .await
            .unwrap();
        assert_eq!(
            recent,
            Recent {
                minutes: 15,
                replicated: 900.0,
                bytes: 9000.0,
                failed: 0.0,
                replicated_per_s: 1.0,
                latency_p50_ms: Some(120.0),
                latency_p99_ms: Some(2400.0),
                note: None,
            }
        );

        let refused = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
            .match_requests(|r| {
                r.metric_data_queries()
                    .iter()
                    .any(|q| q.id() == Some("p99"))
            })
            .then_http_response(|| {
                HttpResponse::new(StatusCode::try_from(500).unwrap(), SdkBody::empty())
            });
        let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&counts, &refused]);
        let recent = from_cloudwatch(&cw, Duration::from_secs(60)).await.unwrap();
        assert_eq!((recent.replicated, recent.latency_p99_ms), (900.0, None));
        assert!(recent.note.unwrap().contains("percentiles unavailable"));
    }
}
