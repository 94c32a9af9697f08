//! Client calls of the catalogue: search with filters, and a version's lineage.

use adapter_core::api::{LineageView, RepositoryList, kind_segment};
use adapter_core::manifest::Kind;
use reqwest::Method;

use crate::client::{Client, Result};

impl Client {
    /// `GET /v1/{kind}?…` (one page); `params` are sent as given (repeatable ones repeated).
    pub async fn search(&self, kind: Kind, params: &[(&str, String)]) -> Result<RepositoryList> {
        let mut url = self.url(&["v1", kind_segment(kind)]);
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in params {
                pairs.append_pair(k, v);
            }
        }
        self.json(self.request(Method::GET, url)).await
    }

    /// `GET /v1/{kind}/{ns}/{name}/versions/{version}/lineage`.
    pub async fn lineage(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        version: &str,
    ) -> Result<LineageView> {
        let url = self.url(&[
            "v1",
            kind_segment(kind),
            ns,
            name,
            "versions",
            version,
            "lineage",
        ]);
        self.json(self.request(Method::GET, url)).await
    }
}
