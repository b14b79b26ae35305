//! `--html FILE`: one self-contained page (no network fetch) with the summary table and two
//! charts drawn as inline SVG: throughput over time and latency over time.

use std::fmt::Write;

use crate::report::{IntervalPoint, Percentiles, Report};

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 260.0;
const MARGIN: f64 = 50.0;

/// One line of a chart: a name, a colour, and the value at each point.
struct Series<'a> {
    name: &'a str,
    colour: &'a str,
    value: fn(&IntervalPoint) -> f64,
}

pub fn render(report: &Report) -> String {
    let mut page = String::new();
    let w = &report.workload;
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>odradek-bench: {topic}</title>\
         <style>body{{font-family:sans-serif;margin:2em;color:#222}}\
         table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}th{{background:#f4f4f4}}\
         svg{{background:#fafafa;border:1px solid #ddd}}</style></head><body>\
         <h1>odradek-bench</h1><p>{bootstrap}, topic <b>{topic}</b>, {partitions} partitions, \
         {size} B messages, acks={acks}, {producers} producers, {consumers} consumers, \
         batch {batch} B, linger {linger} ms, compression {compression}, keys {keys}, \
         rate {rate}, warm-up {warmup} s</p>",
        bootstrap = escape(&w.bootstrap),
        topic = escape(&w.topic),
        partitions = w.partitions,
        size = w.message_size,
        acks = w.acks,
        producers = w.producers,
        consumers = w.consumers,
        batch = w.batch_size,
        linger = w.linger_ms,
        compression = w.compression,
        keys = w.keys,
        rate = if w.rate_msgs_per_s > 0.0 {
            format!("{:.0} msg/s", w.rate_msgs_per_s)
        } else {
            "as fast as possible".into()
        },
        warmup = w.warmup_s,
    );
    let _ = write!(
        page,
        "<table><tr><th></th><th>msg/s</th><th>MB/s</th></tr>\
         <tr><th>publish</th><td>{:.0}</td><td>{:.2}</td></tr>\
         <tr><th>consume</th><td>{:.0}</td><td>{:.2}</td></tr></table><br>",
        report.publish_msgs_per_s,
        report.publish_mb_per_s,
        report.consume_msgs_per_s,
        report.consume_mb_per_s
    );
    page.push_str(
        "<table><tr><th>latency (µs)</th><th>p50</th><th>p75</th><th>p95</th><th>p99</th>\
         <th>p99.9</th><th>p99.99</th><th>max</th></tr>",
    );
    latency_row(
        &mut page,
        "publish (send → ack)",
        &report.publish_latency_us,
    );
    latency_row(&mut page, "end-to-end", &report.e2e_latency_us);
    page.push_str("</table>");
    if let Some(v) = &report.verify {
        let _ = write!(
            page,
            "<p>verify: <b>{}</b> ({} acknowledged, {} lost, {} duplicates, {} gaps)</p>",
            if v.passed { "PASSED" } else { "FAILED" },
            v.messages_acked,
            v.lost,
            v.duplicates,
            v.gaps
        );
    }
    page.push_str("<h2>Throughput (MB/s)</h2>");
    chart(
        &mut page,
        &report.intervals,
        &[
            Series {
                name: "publish",
                colour: "#1f77b4",
                value: |p| p.publish_mb_per_s,
            },
            Series {
                name: "consume",
                colour: "#2ca02c",
                value: |p| p.consume_mb_per_s,
            },
        ],
    );
    page.push_str("<h2>Latency per second (ms)</h2>");
    chart(
        &mut page,
        &report.intervals,
        &[
            Series {
                name: "publish p50",
                colour: "#1f77b4",
                value: |p| p.publish_p50_us as f64 / 1e3,
            },
            Series {
                name: "publish p99",
                colour: "#aec7e8",
                value: |p| p.publish_p99_us as f64 / 1e3,
            },
            Series {
                name: "e2e p50",
                colour: "#d62728",
                value: |p| p.e2e_p50_us as f64 / 1e3,
            },
            Series {
                name: "e2e p99",
                colour: "#ff9896",
                value: |p| p.e2e_p99_us as f64 / 1e3,
            },
        ],
    );
    page.push_str("<p>Shaded: warm-up, excluded from the results.</p></body></html>\n");
    page
}

fn latency_row(page: &mut String, name: &str, p: &Percentiles) {
    let _ = write!(
        page,
        "<tr><th>{name}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td></tr>",
        p.p50, p.p75, p.p95, p.p99, p.p999, p.p9999, p.max
    );
}

fn chart(page: &mut String, points: &[IntervalPoint], series: &[Series]) {
    let t_max = points.iter().map(|p| p.t_s).fold(1.0, f64::max);
    let y_max = points
        .iter()
        .flat_map(|p| series.iter().map(move |s| (s.value)(p)))
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let x = |t: f64| MARGIN + t / t_max * (WIDTH - 2.0 * MARGIN);
    let y = |v: f64| HEIGHT - MARGIN + -v / y_max * (HEIGHT - 2.0 * MARGIN);
    let _ = write!(
        page,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\">"
    );
    if let Some(end) = points
        .iter()
        .filter(|p| p.warmup)
        .map(|p| p.t_s)
        .reduce(f64::max)
    {
        let _ = write!(
            page,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#eee\"/>",
            x(0.0),
            y(y_max),
            x(end) - x(0.0),
            y(0.0) - y(y_max)
        );
    }
    // Axes with the maximum of each, and the time axis in seconds.
    let _ = write!(
        page,
        "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{2:.1}\" y2=\"{1:.1}\" stroke=\"#444\"/>\
         <line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{3:.1}\" stroke=\"#444\"/>\
         <text x=\"4\" y=\"{3:.1}\" font-size=\"11\">{4:.1}</text>\
         <text x=\"{0:.1}\" y=\"{5:.1}\" font-size=\"11\">0 s</text>\
         <text x=\"{2:.1}\" y=\"{5:.1}\" font-size=\"11\" text-anchor=\"end\">{6:.0} s</text>",
        x(0.0),
        y(0.0),
        x(t_max),
        y(y_max),
        y_max,
        y(0.0) + 16.0,
        t_max
    );
    for (i, s) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.t_s), y((s.value)(p))))
            .collect();
        let _ = write!(
            page,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"{}\">{}</text>",
            s.colour,
            path.join(" "),
            WIDTH - MARGIN - 110.0,
            MARGIN - 30.0 + 14.0 * i as f64,
            s.colour,
            s.name
        );
    }
    page.push_str("</svg>");
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
