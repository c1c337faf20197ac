//! `--html`: one self-contained page (inline SVG, no scripts, no external CSS) with the
//! latency percentile distributions and the throughput over time.

use std::fmt::Write as _;

use super::report::{PercentilePoint, Report};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;

/// One line on a chart.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
}

/// Renders the whole page.
pub fn render(report: &Report) -> String {
    let mut page = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>tandem loadtest</title>\
         <style>body{font-family:sans-serif;margin:2em;color:#222}\
         table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}\
         th:first-child,td:first-child{text-align:left}</style></head><body>\n",
    );
    let _ = writeln!(
        page,
        "<h1>tandem loadtest</h1><p>{} clients on {} for {:.1}s, codec {}, seed {}: \
         {:.1} skips/s, {:.1} matches/s, {:.1} messages/s; {} errors, {} connection failures, \
         <b>{} violations</b>.</p>",
        report.clients,
        escape(&report.targets.join(", ")),
        report.duration_secs,
        report.codec,
        report.seed,
        report.skips_per_sec,
        report.matches_per_sec,
        report.msgs_per_sec,
        report.errors,
        report.connection_failures,
        report.violations,
    );
    page.push_str("<table><tr><th>latency ms</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n");
    for (name, l) in [
        ("match", &report.match_latency_ms),
        ("message", &report.msg_latency_ms),
        ("signal", &report.signal_latency_ms),
        ("connect", &report.connect_latency_ms),
        ("solve", &report.solve_latency_ms),
    ] {
        let _ = writeln!(
            page,
            "<tr><td>{name}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
            l.count, l.p50, l.p90, l.p99, l.p999, l.max
        );
    }
    page.push_str("</table>\n");

    let latency = [
        Series {
            name: "match",
            color: "#1f77b4",
            points: curve(&report.match_latency_distribution),
        },
        Series {
            name: "message",
            color: "#d62728",
            points: curve(&report.msg_latency_distribution),
        },
    ];
    // The x axis is log10(1/(1-p)): each tick is one more nine.
    let ticks: Vec<(f64, String)> = [
        (0.5, "50%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
    ]
    .iter()
    .map(|&(p, label)| (nines(p), label.to_owned()))
    .collect();
    page.push_str(&chart(
        "Latency by percentile",
        "percentile",
        "latency (ms)",
        &latency,
        &ticks,
        4.0,
    ));

    let per_second = |pick: fn(&super::report::SecondSample) -> u64| -> Vec<(f64, f64)> {
        report
            .throughput
            .iter()
            .map(|s| (s.second as f64 + 0.5, pick(s) as f64))
            .collect()
    };
    let throughput = [
        Series {
            name: "skips/s",
            color: "#2ca02c",
            points: per_second(|s| s.skips),
        },
        Series {
            name: "matches/s",
            color: "#9467bd",
            points: per_second(|s| s.matches),
        },
    ];
    let seconds = report.throughput.len() as f64;
    let step = (seconds / 10.0).ceil().max(1.0);
    let time_ticks: Vec<(f64, String)> = (0..=(seconds / step) as usize)
        .map(|i| (i as f64 * step, format!("{}s", i as f64 * step)))
        .collect();
    page.push_str(&chart(
        "Throughput over the run",
        "time since start",
        "per second",
        &throughput,
        &time_ticks,
        seconds.max(1.0),
    ));
    page.push_str("</body></html>\n");
    page
}

/// log10(1/(1-p)), the position of percentile `p` (0 to 1) on the x axis.
fn nines(p: f64) -> f64 {
    (1.0 / (1.0 - p)).log10()
}

/// A distribution as (x, ms), leaving out 100%, which has no place on a log axis.
fn curve(points: &[PercentilePoint]) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter(|p| p.percentile < 100.0)
        .map(|p| (nines(p.percentile / 100.0), p.ms))
        .collect()
}

/// The smallest "round" number (1, 2 or 5 times a power of ten) at or above `value`.
fn round_up(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&v| v >= value)
        .unwrap_or(10.0 * magnitude)
}

/// One SVG line chart with a legend, axis labels and ticks.
fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    x_ticks: &[(f64, String)],
    min_x_max: f64,
) -> String {
    let x_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(min_x_max, f64::max);
    let y_max = round_up(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |v: f64| LEFT + v / x_max * plot_w;
    let y = |v: f64| TOP + plot_h - v / y_max * plot_h;

    let mut svg = String::new();
    let _ = write!(
        svg,
        "<h2>{}</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-size=\"12\" font-family=\"sans-serif\">\n",
        escape(title)
    );
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#999\"/>"
    );
    for (value, label) in x_ticks {
        let px = x(*value);
        let _ = writeln!(
            svg,
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            TOP + plot_h,
            TOP + plot_h + 16.0,
            escape(label)
        );
    }
    for i in 0..=4 {
        let value = y_max * f64::from(i) / 4.0;
        let py = y(value);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            py + 4.0,
            format_number(value)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0,
        escape(x_label),
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(vx, vy)| format!("{:.1},{:.1}", x(vx), y(vy)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"3\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            s.color,
            points.join(" "),
            LEFT + 10.0 + i as f64 * 110.0,
            TOP - 16.0,
            s.color,
            LEFT + 26.0 + i as f64 * 110.0,
            TOP - 12.0,
            escape(s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn format_number(value: f64) -> String {
    if value >= 10.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_numbers_bound_the_axis() {
        assert_eq!(round_up(0.0), 1.0);
        assert_eq!(round_up(3.2), 5.0);
        assert_eq!(round_up(17.0), 20.0);
        assert_eq!(round_up(100.0), 100.0);
    }

    #[test]
    fn percentiles_sit_one_nine_apart() {
        assert!((nines(0.9) - 1.0).abs() < 1e-9);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
    }
}
