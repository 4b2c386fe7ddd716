//! `--plot FILE.svg`: allowed and denied requests per rule over time, one panel per rule,
//! as a self-contained SVG written by hand (no script, no external reference). With
//! `--compare`, the old configuration's denials are drawn dashed in the same panel.

use std::fmt::Write;

use super::report::{time, Bucket, Report};

const WIDTH: f64 = 960.0;
const PANEL: f64 = 150.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 56.0;
const GAP: f64 = 46.0;

const ALLOWED: &str = "#2563eb";
const DENIED: &str = "#dc2626";
const THROTTLED: &str = "#d97706";

/// Text for an SVG text node or attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn polyline(out: &mut String, points: &[(f64, f64)], color: &str, dashed: bool) {
    if points.is_empty() {
        return;
    }
    let pts: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let dash = if dashed { r#" stroke-dasharray="5 4""# } else { "" };
    let _ = writeln!(
        out,
        r#"<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} points="{}"/>"#,
        pts.join(" ")
    );
}

/// The SVG of a report (and the old one's denials when comparing).
pub fn svg(new: &Report, old: Option<&Report>) -> String {
    let rules = &new.rules;
    let height = TOP + rules.len().max(1) as f64 * (PANEL + GAP) + 10.0;
    let buckets = rules.iter().map(|r| r.series.len()).max().unwrap_or(0).max(1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / buckets as f64;
    let bucket_s = new.timeline.bucket_ns as f64 / 1e9;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let title = match old {
        Some(o) => format!("{} (dashed: denied with {})", new.config, o.config),
        None => new.config.clone(),
    };
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="20" font-size="15" font-weight="bold">Requests per {} by rule: {}</text>"#,
        if bucket_s >= 1.0 { format!("{bucket_s} s") } else { format!("{} ms", bucket_s * 1000.0) },
        escape(&title)
    );
    let legend = [(ALLOWED, "allowed"), (DENIED, "denied (or would deny)"), (THROTTLED, "throttled")];
    let mut lx = LEFT;
    for (color, label) in legend {
        let _ = writeln!(out, r#"<rect x="{lx}" y="30" width="14" height="4" fill="{color}"/>"#);
        let _ = writeln!(out, r#"<text x="{}" y="36">{label}</text>"#, lx + 18.0);
        lx += 40.0 + label.len() as f64 * 7.0;
    }
    for (n, rule) in rules.iter().enumerate() {
        let top = TOP + n as f64 * (PANEL + GAP) + 18.0;
        let old_series: Option<&[Bucket]> =
            old.and_then(|o| o.rules.iter().find(|r| r.name == rule.name)).map(|r| r.series.as_slice());
        let max = rule
            .series
            .iter()
            .chain(old_series.into_iter().flatten())
            .map(|b| b.allowed.max(b.denied).max(b.throttled))
            .max()
            .unwrap_or(0)
            .max(1);
        let y = |v: u64| top + PANEL - PANEL * v as f64 / max as f64;
        let _ = writeln!(
            out,
            r##"<text x="{LEFT}" y="{}" font-weight="bold">{} <tspan font-weight="normal" fill="#555">allowed {}, denied {}, throttled {}, shadow {}</tspan></text>"##,
            top - 6.0,
            escape(&rule.name),
            rule.allowed + rule.unlimited,
            rule.denied + rule.missing_key,
            rule.throttled,
            rule.shadow_denied
        );
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="#f8fafc" stroke="#cbd5e1"/>"##
        );
        let _ = writeln!(out, r#"<text x="{}" y="{}" text-anchor="end">{max}</text>"#, LEFT - 6.0, top + 10.0);
        let _ = writeln!(out, r#"<text x="{}" y="{}" text-anchor="end">0</text>"#, LEFT - 6.0, top + PANEL);
        let points = |f: &dyn Fn(&Bucket) -> u64, series: &[Bucket]| -> Vec<(f64, f64)> {
            (0..buckets).map(|i| (x(i), y(series.get(i).map(f).unwrap_or(0)))).collect()
        };
        polyline(&mut out, &points(&|b| b.allowed, &rule.series), ALLOWED, false);
        polyline(&mut out, &points(&|b| b.denied, &rule.series), DENIED, false);
        if rule.throttled > 0 {
            polyline(&mut out, &points(&|b| b.throttled, &rule.series), THROTTLED, false);
        }
        if let Some(s) = old_series {
            polyline(&mut out, &points(&|b| b.denied, s), DENIED, true);
        }
        // Time axis: start, middle, end (UTC).
        for (i, anchor) in [(0usize, "start"), (buckets / 2, "middle"), (buckets, "end")] {
            let t = new.timeline.origin_ns + i as u64 * new.timeline.bucket_ns;
            let tx = LEFT + plot_w * i as f64 / buckets as f64;
            let _ = writeln!(
                out,
                r##"<text x="{tx:.1}" y="{}" text-anchor="{anchor}" fill="#555">{}</text>"##,
                top + PANEL + 14.0,
                escape(&time(t))
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(escape("a\nb"), "a b");
    }
}
