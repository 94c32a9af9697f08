//! Client calls for aliases and their gates (`adapterctl tag`, `alias`, `gate`).

use adapter_core::api::{
    AliasHistory, AliasInfo, AliasList, AliasMove, GateInfo, GateSpec, kind_segment,
};
use adapter_core::manifest::Kind;
use reqwest::Method;

use super::{Client, Result};

impl Client {
    fn alias_url(&self, kind: Kind, ns: &str, name: &str, rest: &[&str]) -> reqwest::Url {
        let mut segments = vec!["v1", kind_segment(kind), ns, name, "aliases"];
        segments.extend_from_slice(rest);
        self.url(&segments)
    }

    /// `GET …/aliases`.
    pub async fn aliases(&self, kind: Kind, ns: &str, name: &str) -> Result<AliasList> {
        let url = self.alias_url(kind, ns, name, &[]);
        self.json(self.request(Method::GET, url)).await
    }

    /// `GET …/aliases/{alias}`; `None` when the alias does not exist.
    pub async fn alias(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        alias: &str,
    ) -> Result<Option<AliasInfo>> {
        let url = self.alias_url(kind, ns, name, &[alias]);
        match self.json(self.request(Method::GET, url)).await {
            Ok(a) => Ok(Some(a)),
            Err(e) if e.code() == Some("alias_not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT …/aliases/{alias}` (compare-and-swap).
    pub async fn move_alias(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        alias: &str,
        body: &AliasMove,
    ) -> Result<AliasInfo> {
        let url = self.alias_url(kind, ns, name, &[alias]);
        self.json(self.request(Method::PUT, url).json(body)).await
    }

    /// `DELETE …/aliases/{alias}?expect=&reason=`.
    pub async fn delete_alias(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        alias: &str,
        expect: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let mut url = self.alias_url(kind, ns, name, &[alias]);
        url.query_pairs_mut().append_pair("expect", expect);
        if let Some(r) = reason {
            url.query_pairs_mut().append_pair("reason", r);
        }
        self.send_ok(self.request(Method::DELETE, url)).await?;
        Ok(())
    }

    /// `GET …/aliases/{alias}/history`.
    pub async fn alias_history(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        alias: &str,
    ) -> Result<AliasHistory> {
        let url = self.alias_url(kind, ns, name, &[alias, "history"]);
        self.json(self.request(Method::GET, url)).await
    }

    /// `PUT …/aliases/{alias}/gate`.
    pub async fn set_gate(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        alias: &str,
        spec: &GateSpec,
    ) -> Result<GateInfo> {
        let url = self.alias_url(kind, ns, name, &[alias, "gate"]);
        self.json(self.request(Method::PUT, url).json(spec)).await
    }

    /// `GET …/aliases/{alias}/gate`.
    pub async fn gate(&self, kind: Kind, ns: &str, name: &str, alias: &str) -> Result<GateInfo> {
        let url = self.alias_url(kind, ns, name, &[alias, "gate"]);
        self.json(self.request(Method::GET, url)).await
    }

    /// `DELETE …/aliases/{alias}/gate`.
    pub async fn delete_gate(&self, kind: Kind, ns: &str, name: &str, alias: &str) -> Result<()> {
        let url = self.alias_url(kind, ns, name, &[alias, "gate"]);
        self.send_ok(self.request(Method::DELETE, url)).await?;
        Ok(())
    }
}
