//! `jwtd bench --plot FILE.svg`: the latency percentile curve of each run (percentiles on a log scale:
//! 0, 90, 99, 99.9, 99.99 %) and, for a sweep, throughput against p99 latency — drawn with plotters.

use std::path::Path;

use jwtd::loadgen::Report;
use plotters::prelude::*;

/// One curve: a label and its report.
pub(super) struct Series<'a> {
    pub label: String,
    pub report: &'a Report,
}

/// Latency (ms) at "nines" x: x = 1 is p90, 2 is p99, 3 is p99.9 …
fn curve(r: &Report) -> Vec<(f64, f64)> {
    (0..=40)
        .map(|i| {
            let nines = f64::from(i) / 10.0;
            let q = 1.0 - 10f64.powf(-nines);
            (nines, r.latency.value_at_quantile(q) as f64 / 1e6)
        })
        .collect()
}

pub(super) fn draw(path: &Path, series: &[Series<'_>]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let sweep = series.len() > 1;
    let root =
        SVGBackend::new(path, if sweep { (1200, 480) } else { (720, 480) }).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let panels = if sweep {
        root.split_evenly((1, 2))
    } else {
        vec![root.clone()]
    };
    let top = series
        .iter()
        .flat_map(|s| curve(s.report))
        .map(|(_, y)| y)
        .fold(0.001, f64::max);
    let mut chart = ChartBuilder::on(&panels[0])
        .caption("latency by percentile", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..4f64, 0f64..top * 1.05)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| match x.round() as i32 {
            0 => "0".into(),
            n => format!("{}", 100.0 - 100.0 * 10f64.powi(-n)),
        })
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(curve(s.report), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(&e))?;
    if sweep {
        let points: Vec<(f64, f64)> = series
            .iter()
            .map(|s| {
                (
                    s.report.per_second(),
                    s.report.latency.value_at_quantile(0.99) as f64 / 1e6,
                )
            })
            .collect();
        let xmax = points.iter().map(|p| p.0).fold(1.0, f64::max);
        let ymax = points.iter().map(|p| p.1).fold(0.001, f64::max);
        let mut chart = ChartBuilder::on(&panels[1])
            .caption("p99 latency against throughput", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax * 1.1, 0f64..ymax * 1.1)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("achieved requests/s")
            .y_desc("p99 (ms)")
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(LineSeries::new(points.clone(), BLUE.stroke_width(2)))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}
