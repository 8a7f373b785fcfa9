//! The README's picture: the distribution of first-load latency, one curve per cache, for a
//! warm and a cold page cache side by side (SVG, no system fonts needed).

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;

/// One curve: a name and its samples.
pub type Curve = (String, Vec<Duration>);

const COLORS: [RGBColor; 5] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// Writes the empirical CDFs of each panel's curves, on a log time axis.
pub fn write(path: &Path, title: &str, panels: &[(&str, Vec<Curve>)]) {
    let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let root = root.titled(title, ("sans-serif", 20)).unwrap();
    let areas = root.split_evenly((1, panels.len()));
    let all = panels
        .iter()
        .flat_map(|(_, curves)| curves.iter().flat_map(|(_, s)| s.iter()))
        .map(|d| d.as_secs_f64() * 1e3);
    let (lo, hi) = all.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = (lo.max(1e-3) / 1.5, hi * 1.5);
    for ((caption, curves), area) in panels.iter().zip(areas.iter()) {
        let mut chart = ChartBuilder::on(area)
            .caption(*caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((lo..hi).log_scale(), 0f64..1f64)
            .unwrap();
        chart
            .configure_mesh()
            .x_desc("first load (ms, log scale)")
            .y_desc("share of loads at or below")
            .x_label_formatter(&|v| format!("{v}"))
            .draw()
            .unwrap();
        for (n, (name, samples)) in curves.iter().enumerate() {
            let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
            ms.sort_by(f64::total_cmp);
            let len = ms.len() as f64;
            let points = ms
                .iter()
                .enumerate()
                .map(|(i, &v)| (v, (i + 1) as f64 / len));
            let color = COLORS[n % COLORS.len()];
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .unwrap()
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .unwrap();
    }
    root.present().unwrap();
}
