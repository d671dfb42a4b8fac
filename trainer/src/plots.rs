//! Figures of a run: `samples.png`, `trajectories.png`, `curves.png` and the
//! side-by-side figure of `compare`. Text uses an embedded DejaVu Sans Mono, so
//! plotting needs no system fonts.

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result, anyhow, bail};
use plotters::prelude::*;
use plotters::style::FontStyle;

const FONT: &str = "indm-mono";
static FONT_ONCE: Once = Once::new();

fn font() -> &'static str {
    FONT_ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
        // The embedded font is known to be valid; a failure would only lose labels.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, bytes);
    });
    FONT
}

/// Checks that `path` names a PNG file and creates its folder, so that a bad output path
/// fails before any sampling, with the path in the message.
pub fn prepare_png(path: &Path) -> Result<()> {
    let png = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !png {
        bail!(
            "output {}: expected a file name ending in .png",
            path.display()
        );
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the folder of output {}", path.display()))?;
    }
    Ok(())
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

/// A square window `[-r, r]^2` (with margin) that holds most of the points.
pub fn window(points: &[f64]) -> f64 {
    let mut a: Vec<f64> = points
        .iter()
        .map(|v| v.abs())
        .filter(|v| v.is_finite())
        .collect();
    if a.is_empty() {
        return 1.0;
    }
    a.sort_by(f64::total_cmp);
    let q = a[((a.len() as f64) * 0.995) as usize % a.len()];
    (q * 1.1).max(1e-3)
}

/// Points of one colour in a scatter panel.
pub struct Layer<'a> {
    /// Row-major 2D points.
    pub points: &'a [f64],
    /// Colour.
    pub color: RGBColor,
    /// Opacity.
    pub alpha: f64,
    /// Legend label.
    pub label: &'a str,
}

/// The coordinates of a square panel.
type SquareCoords =
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>;

/// A chart on `[-r, r]^2` with a caption and a light mesh.
fn square_chart<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    title: &str,
    caption_size: u32,
    r: f64,
) -> Result<ChartContext<'a, BitMapBackend<'b>, SquareCoords>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (font(), caption_size))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(32)
        .build_cartesian_2d(-r..r, -r..r)
        .map_err(err)?;
    chart
        .configure_mesh()
        .label_style((font(), 11))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

fn scatter_panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    r: f64,
    layers: &[Layer],
) -> Result<()> {
    let mut chart = square_chart(area, title, 18, r)?;
    for l in layers {
        let style = l.color.mix(l.alpha).filled();
        chart
            .draw_series(
                l.points
                    .chunks_exact(2)
                    .filter(|p| p[0].abs() <= r && p[1].abs() <= r)
                    .map(|p| Circle::new((p[0], p[1]), 1, style)),
            )
            .map_err(err)?
            .label(l.label)
            .legend(move |(x, y)| Circle::new((x, y), 3, style));
    }
    if layers.len() > 1 {
        chart
            .configure_series_labels()
            .label_font((font(), 11))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// One row of scatter panels sharing the data's window, under a title.
fn scatter_row(
    path: &Path,
    title: &str,
    data: &[f64],
    panels: &[(&str, Vec<Layer>)],
) -> Result<()> {
    let width = 40 + 530 * panels.len() as u32;
    let root = BitMapBackend::new(path, (width, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, body) = root.split_vertically(30);
    top.titled(title, (font(), 18)).map_err(err)?;
    let areas = body.split_evenly((1, panels.len()));
    let r = window(data);
    for ((name, layers), area) in panels.iter().zip(areas.iter()) {
        scatter_panel(area, name, r, layers)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// The data alone, in black.
fn data_layer(data: &[f64]) -> Layer<'_> {
    Layer {
        points: data,
        color: BLACK,
        alpha: 0.35,
        label: "data",
    }
}

/// `samples.png`: the data on the left, model samples over the data on the right.
pub fn samples(path: &Path, title: &str, data: &[f64], model: &[f64]) -> Result<()> {
    let over = vec![
        Layer {
            color: RGBColor(170, 170, 170),
            ..data_layer(data)
        },
        Layer {
            points: model,
            color: RGBColor(20, 90, 200),
            alpha: 0.45,
            label: "samples",
        },
    ];
    scatter_row(
        path,
        title,
        data,
        &[
            ("data", vec![data_layer(data)]),
            ("model samples over the data", over),
        ],
    )
}

/// Colour of time `t` in [0, 1]: blue (noise, t = 1) to red (data, t = 0).
fn time_color(t: f64) -> RGBColor {
    let u = t.clamp(0.0, 1.0);
    RGBColor(
        (220.0 * (1.0 - u) + 30.0 * u) as u8,
        60,
        (30.0 * (1.0 - u) + 220.0 * u) as u8,
    )
}

fn paths_panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    states: &[(f64, Vec<f64>)],
    n_paths: usize,
) -> Result<()> {
    let last = &states.last().expect("non-empty trajectory").1;
    let all: Vec<f64> = states
        .iter()
        .flat_map(|(_, s)| s[..(2 * n_paths).min(s.len())].iter().copied())
        .collect();
    let r = window(&all).max(window(last));
    let mut chart = square_chart(area, title, 16, r)?;
    for p in 0..n_paths.min(last.len() / 2) {
        for w in states.windows(2) {
            let (a, b) = (&w[0].1, &w[1].1);
            let seg = [(a[2 * p], a[2 * p + 1]), (b[2 * p], b[2 * p + 1])];
            if seg.iter().all(|(x, y)| x.is_finite() && y.is_finite()) {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        seg.to_vec(),
                        time_color(w[1].0).mix(0.55),
                    )))
                    .map_err(err)?;
            }
        }
    }
    chart
        .draw_series(
            last.chunks_exact(2)
                .take(4000)
                .map(|q| Circle::new((q[0], q[1]), 1, BLACK.mix(0.25).filled())),
        )
        .map_err(err)?;
    Ok(())
}

/// `trajectories.png`: the same reverse trajectories in latent space and in data space.
pub fn trajectories(
    path: &Path,
    title: &str,
    latent: &[(f64, Vec<f64>)],
    data: &[(f64, Vec<f64>)],
    n_paths: usize,
) -> Result<()> {
    let root = BitMapBackend::new(path, (1100, 580)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, body) = root.split_vertically(30);
    top.titled(title, (font(), 17)).map_err(err)?;
    let panels = body.split_evenly((1, 2));
    paths_panel(
        &panels[0],
        "latent z_t (linear SDE)  blue t=1 -> red t=eps",
        latent,
        n_paths,
    )?;
    paths_panel(
        &panels[1],
        "data x_t = h^-1(z_t) (implicit nonlinear SDE)",
        data,
        n_paths,
    )?;
    root.present().map_err(err)?;
    Ok(())
}

/// One curve of `curves.png`.
pub struct Curve {
    /// Panel title.
    pub name: String,
    /// `(step, value)` points.
    pub points: Vec<(f64, f64)>,
    /// Optional horizontal reference line with its label.
    pub reference: Option<(f64, String)>,
}

/// `curves.png`: one panel per curve.
pub fn curves(path: &Path, title: &str, curves: &[Curve]) -> Result<()> {
    let cols = 2;
    let rows = curves.len().div_ceil(cols).max(1);
    let root = BitMapBackend::new(path, (1100, 40 + 300 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, body) = root.split_vertically(30);
    top.titled(title, (font(), 17)).map_err(err)?;
    let panels = body.split_evenly((rows, cols));
    for (c, area) in curves.iter().zip(panels.iter()) {
        let pts: Vec<(f64, f64)> = c
            .points
            .iter()
            .copied()
            .filter(|(_, y)| y.is_finite())
            .collect();
        if pts.is_empty() {
            continue;
        }
        let x_max = pts.iter().map(|p| p.0).fold(1.0, f64::max);
        let mut ys: Vec<f64> = pts.iter().map(|p| p.1).collect();
        if let Some((r, _)) = &c.reference {
            ys.push(*r);
        }
        ys.sort_by(f64::total_cmp);
        // Robust range: ignore the first 2% of values (early transients).
        let lo = ys[0];
        let hi = ys[((ys.len() as f64) * 0.98) as usize % ys.len()];
        let pad = ((hi - lo).abs() * 0.05).max(1e-3);
        let mut chart = ChartBuilder::on(area)
            .caption(&c.name, (font(), 14))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))
            .map_err(err)?;
        chart
            .configure_mesh()
            .label_style((font(), 11))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(pts, RGBColor(20, 90, 200)))
            .map_err(err)?;
        if let Some((r, label)) = &c.reference {
            chart
                .draw_series(LineSeries::new(vec![(0.0, *r), (x_max, *r)], RED))
                .map_err(err)?
                .label(label.as_str())
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED));
            chart
                .configure_series_labels()
                .label_font((font(), 11))
                .background_style(WHITE.mix(0.8))
                .draw()
                .map_err(err)?;
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

/// The compare figure: data, INDM samples, baseline samples.
pub fn compare(
    path: &Path,
    title: &str,
    data: &[f64],
    indm: &[f64],
    baseline: &[f64],
) -> Result<()> {
    let one = |points, color, label| {
        vec![Layer {
            points,
            color,
            alpha: 0.45,
            label,
        }]
    };
    scatter_row(
        path,
        title,
        data,
        &[
            ("data", vec![data_layer(data)]),
            (
                "INDM (coupling flow)",
                one(indm, RGBColor(20, 90, 200), "INDM"),
            ),
            (
                "baseline (identity flow)",
                one(baseline, RGBColor(200, 80, 20), "baseline"),
            ),
        ],
    )
}
