//! A small inline SVG line chart of one `benchmark:metric` across versions, and the
//! charts of every metric of a repository.

use std::collections::{BTreeMap, HashMap};

use adapter_core::api::LatestEval;

use super::html::esc;
use crate::db::catalog::PageVersion;

const W: f64 = 320.0;
const H: f64 = 120.0;
const PAD: f64 = 24.0;

/// `points`: `(version, value)` in version order (oldest first). Empty → empty string.
pub fn svg(title: &str, points: &[(String, f64)]) -> String {
    if points.is_empty() {
        return String::new();
    }
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let n = points.len();
    let x = |i: usize| {
        if n == 1 {
            W / 2.0
        } else {
            PAD + (W - 2.0 * PAD) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| {
        if hi > lo {
            H - PAD - (H - 2.0 * PAD) * (v - lo) / span
        } else {
            H / 2.0
        }
    };
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| format!("{:.1},{:.1}", x(i), y(*v)))
        .collect();
    let mut out = format!(
        "<svg class=\"chart\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>\
         <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#fafafa\" stroke=\"#ddd\"/>\
         <text x=\"4\" y=\"12\" font-size=\"10\">{t}</text>\
         <text x=\"4\" y=\"{ylo:.1}\" font-size=\"9\" fill=\"#666\">{lo}</text>\
         <text x=\"4\" y=\"{yhi:.1}\" font-size=\"9\" fill=\"#666\">{hi}</text>\
         <polyline fill=\"none\" stroke=\"#2a6fdb\" stroke-width=\"1.5\" points=\"{pts}\"/>",
        t = esc(title),
        ylo = H - PAD + 12.0,
        yhi = PAD - 4.0,
        lo = fmt(lo),
        hi = fmt(hi),
        pts = line.join(" "),
    );
    for (i, (version, v)) in points.iter().enumerate() {
        out.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#2a6fdb\"><title>{} = {}</title></circle>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"8\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
            x(i),
            y(*v),
            esc(version),
            fmt(*v),
            x(i),
            H - 6.0,
            esc(version)
        ));
    }
    out.push_str("</svg>");
    out
}

/// "Evals across versions": a chart per `benchmark:metric` over `versions` (newest first,
/// as the catalogue lists them), from each version's latest `evals`; empty without evals.
pub fn across_versions(versions: &[PageVersion], evals: &HashMap<i64, Vec<LatestEval>>) -> String {
    let mut series: BTreeMap<(String, String), Vec<(String, f64)>> = BTreeMap::new();
    for v in versions.iter().rev() {
        for e in evals.get(&v.id).into_iter().flatten() {
            series
                .entry((e.benchmark.clone(), e.metric.clone()))
                .or_default()
                .push((v.version.clone(), e.value));
        }
    }
    if series.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Evals across versions</h2><div class=\"charts\">");
    for ((b, m), points) in &series {
        out.push_str(&svg(&format!("{b}:{m}"), points));
    }
    out.push_str("</div>");
    out
}

/// A score, short.
pub fn fmt(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_escapes_and_plots_every_point() {
        let s = svg(
            "<mmlu>:acc",
            &[("1.0.0".into(), 0.5), ("1.1.0".into(), 0.7)],
        );
        assert!(s.contains("&lt;mmlu&gt;:acc"));
        assert!(!s.contains("<mmlu>"));
        assert_eq!(s.matches("<circle").count(), 2);
        assert_eq!(svg("x", &[]), "");
        assert_eq!(fmt(0.61), "0.61");
        assert_eq!(fmt(2.0), "2");
    }
}
