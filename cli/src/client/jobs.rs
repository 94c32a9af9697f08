//! Client calls for jobs (`adapterctl jobs …`, `adapterctl validate`).

use adapter_core::api::{JobInfo, JobList, JobLogs, JobSubmit};
use reqwest::Method;

use super::{Client, Result};

/// Filters of `GET /v1/jobs`.
#[derive(Debug, Clone, Default)]
pub struct JobQuery<'a> {
    pub state: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub cursor: Option<&'a str>,
    pub limit: Option<u32>,
}

impl Client {
    /// `POST /v1/jobs`: the new job, or the existing one with the same idempotency key.
    pub async fn submit_job(&self, req: &JobSubmit) -> Result<JobInfo> {
        let url = self.url(&["v1", "jobs"]);
        self.json(self.request(Method::POST, url).json(req)).await
    }

    /// `GET /v1/jobs/{id}`.
    pub async fn job(&self, id: &str) -> Result<JobInfo> {
        self.json(self.request(Method::GET, self.url(&["v1", "jobs", id])))
            .await
    }

    /// `GET /v1/jobs` (one page).
    pub async fn jobs(&self, q: &JobQuery<'_>) -> Result<JobList> {
        let mut url = self.url(&["v1", "jobs"]);
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in [("state", q.state), ("kind", q.kind), ("cursor", q.cursor)] {
                if let Some(v) = v {
                    pairs.append_pair(k, v);
                }
            }
            if let Some(l) = q.limit {
                pairs.append_pair("limit", &l.to_string());
            }
        }
        self.json(self.request(Method::GET, url)).await
    }

    /// `POST /v1/jobs/{id}/cancel`.
    pub async fn cancel_job(&self, id: &str) -> Result<JobInfo> {
        let url = self.url(&["v1", "jobs", id, "cancel"]);
        self.json(self.request(Method::POST, url)).await
    }

    /// `GET /v1/jobs/{id}/logs?after=`.
    pub async fn job_logs(&self, id: &str, after: i64) -> Result<JobLogs> {
        let mut url = self.url(&["v1", "jobs", id, "logs"]);
        url.query_pairs_mut()
            .append_pair("after", &after.to_string());
        self.json(self.request(Method::GET, url)).await
    }
}
