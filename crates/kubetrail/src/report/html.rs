//! The page: one HTML file that needs nothing but a browser. The template, our script and
//! styles and the vendored uPlot (MIT; `assets/uPlot.LICENSE`) are compiled into the binary
//! with `include_str!` and written inline, so a report opens from a mail attachment with no
//! network, and `serve` hands out the very same page.
//!
//! A report file carries its [`Report`] as gzip-compressed JSON in base64 inside a
//! `<script type="application/gzip">` element, which the page inflates with the browser's own
//! `DecompressionStream`: JSON of 100k pods and 1000 nodes' series compresses about eightfold,
//! which is what keeps such a report at a few megabytes. The live page carries no data, only a
//! note that it should read `/api/report`.

use std::io::Write;

use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::model::Report;

const TEMPLATE: &str = include_str!("assets/page.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");
/// Shipped inside every page, as the MIT licence asks of copies.
pub const UPLOT_LICENSE: &str = include_str!("assets/uPlot.LICENSE");

/// Where the page gets its report from.
pub enum Data<'a> {
    /// Inside the file (`kubetrail report`).
    Embedded(&'a Report),
    /// From `/api/report` of the server that served the page (`kubetrail serve`).
    Live { source: &'a str },
}

/// The page, complete.
pub fn render(data: Data<'_>) -> std::io::Result<String> {
    let (title, mode, payload) = match data {
        Data::Embedded(report) => (
            format!("kubetrail report: {}", report.source),
            "report",
            compress(report)?,
        ),
        Data::Live { source } => (format!("kubetrail: {source}"), "live", String::new()),
    };
    let config = serde_json::json!({ "mode": mode });
    let mut page = String::with_capacity(
        TEMPLATE.len() + APP_JS.len() + UPLOT_JS.len() + payload.len() + 4096,
    );
    // Each marker is replaced once, in order, so text inside an inserted asset is never taken
    // for a marker.
    let mut rest = TEMPLATE;
    for (marker, value) in [
        ("<!--KT:TITLE-->", escape_html(&title)),
        ("<!--KT:UPLOT_CSS-->", UPLOT_CSS.to_string()),
        ("<!--KT:APP_CSS-->", APP_CSS.to_string()),
        ("<!--KT:CONFIG-->", script_json(&config.to_string())),
        ("<!--KT:DATA-->", payload),
        ("<!--KT:UPLOT_LICENSE-->", escape_html(UPLOT_LICENSE.trim())),
        ("<!--KT:UPLOT_JS-->", UPLOT_JS.to_string()),
        ("<!--KT:APP_JS-->", APP_JS.to_string()),
    ] {
        let (before, after) = rest
            .split_once(marker)
            .unwrap_or_else(|| panic!("page.html lacks {marker}"));
        page.push_str(before);
        page.push_str(&value);
        rest = after;
    }
    page.push_str(rest);
    Ok(page)
}

/// The report as JSON, gzip-compressed, in base64 (the text of a `<script>`: base64 holds no
/// `<`, so no `</script>` can appear in it).
fn compress(report: &Report) -> std::io::Result<String> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::new(6));
    serde_json::to_writer(&mut gz, report)?;
    gz.flush()?;
    let bytes = gz.finish()?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// JSON that may sit inside `<script>`: `<` escaped, so that no `</script>` ends it early.
fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    #[test]
    fn a_report_page_holds_everything_and_its_data_inflates_back() {
        let report = Report {
            version: 1,
            source: "</script><b>x.db".into(),
            ..Default::default()
        };
        let page = render(Data::Embedded(&report)).unwrap();
        assert!(!page.contains("<!--KT:"), "a marker was left");
        assert!(page.contains("uPlot"));
        assert!(
            page.contains("Leon Sorokin"),
            "uPlot's licence ships with it"
        );
        assert!(page.contains("&lt;/script&gt;&lt;b&gt;x.db"));
        // No external resource: nothing to fetch from any network.
        for needle in ["src=\"http", "href=\"http", "src=\"//", "@import"] {
            assert!(!page.contains(needle), "{needle}");
        }
        let start = page.find("id=\"kt-data\"").unwrap();
        let body = &page[start..];
        let body = &body[body.find('>').unwrap() + 1..body.find("</script>").unwrap()];
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .unwrap();
        let mut json = String::new();
        GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut json)
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["source"], "</script><b>x.db");
    }

    #[test]
    fn the_live_page_has_no_data() {
        let page = render(Data::Live { source: "a.db" }).unwrap();
        assert!(page.contains(r#"{"mode":"live"}"#));
        assert!(page.contains("id=\"kt-data\" type=\"application/gzip\"></script>"));
    }
}
