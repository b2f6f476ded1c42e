//! damo's `--plot FILE` of the distribution reports (`wss`, `nr_regions`,
//! `footprints`): the values against their percentile (sorted) or their
//! position in time, as a line chart PNG with axes, ticks and labels.

use crate::canvas::{encode_png, Canvas};
use crate::DamoError;
use embedded_graphics::mono_font::ascii::FONT_6X10;
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Line, PrimitiveStyle};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};

const W: u32 = 640;
const H: u32 = 400;
const LEFT: u32 = 90;
const RIGHT: u32 = 20;
const TOP: u32 = 30;
const BOTTOM: u32 = 45;

/// A line chart of `values` (in order) with x from 0 to 100: `x_label`
/// (e.g. "percentile" or "runtime (percent)"), `y_label`, `title`, and
/// `fmt` for the y tick labels.
pub fn plot_dist(
    values: &[u64],
    x_label: &str,
    y_label: &str,
    title: &str,
    fmt: &dyn Fn(f64) -> String,
) -> Result<Vec<u8>, DamoError> {
    if values.is_empty() {
        return Err(DamoError::Report("nothing to plot: no value".into()));
    }
    let mut c = Canvas::new(W, H);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let black = Rgb888::BLACK;
    let text = MonoTextStyle::new(&FONT_6X10, black);
    let style =
        |a: Alignment, b: Baseline| TextStyleBuilder::new().alignment(a).baseline(b).build();
    let pt = |x: u32, y: u32| Point::new(x as i32, y as i32);
    let line = |c: &mut Canvas, a: Point, b: Point, colour: Rgb888| {
        let _ = Line::new(a, b)
            .into_styled(PrimitiveStyle::with_stroke(colour, 1))
            .draw(c);
    };
    // frame and ticks
    line(&mut c, pt(LEFT, TOP), pt(LEFT, TOP + ph), black);
    line(&mut c, pt(LEFT, TOP + ph), pt(LEFT + pw, TOP + ph), black);
    for i in 0..=4u32 {
        let x = LEFT + pw * i / 4;
        line(&mut c, pt(x, TOP + ph), pt(x, TOP + ph + 4), black);
        let _ = Text::with_text_style(
            &format!("{}", 25 * i),
            pt(x, TOP + ph + 6),
            text,
            style(Alignment::Center, Baseline::Top),
        )
        .draw(&mut c);
        let y = TOP + ph - ph * i / 4;
        line(&mut c, pt(LEFT - 4, y), pt(LEFT, y), black);
        let _ = Text::with_text_style(
            &fmt(max * f64::from(i) / 4.0),
            pt(LEFT - 6, y),
            text,
            style(Alignment::Right, Baseline::Middle),
        )
        .draw(&mut c);
    }
    let _ = Text::with_text_style(
        x_label,
        pt(LEFT + pw / 2, H - 14),
        text,
        style(Alignment::Center, Baseline::Top),
    )
    .draw(&mut c);
    let _ = Text::with_text_style(
        y_label,
        pt(4, TOP - 14),
        text,
        style(Alignment::Left, Baseline::Top),
    )
    .draw(&mut c);
    let _ = Text::with_text_style(
        title,
        pt(W / 2, 4),
        text,
        style(Alignment::Center, Baseline::Top),
    )
    .draw(&mut c);
    // the values
    let n = values.len();
    let at = |i: usize, v: u64| {
        let x = if n > 1 {
            pw as usize * i / (n - 1)
        } else {
            pw as usize / 2
        };
        let y = (v as f64 / max * f64::from(ph)).round() as u32;
        pt(LEFT + x as u32, TOP + ph - y.min(ph))
    };
    let blue = Rgb888::new(20, 60, 200);
    let mut prev = at(0, values[0]);
    for (i, &v) in values.iter().enumerate().skip(1) {
        let p = at(i, v);
        line(&mut c, prev, p, blue);
        prev = p;
    }
    if n == 1 {
        c.put(prev.x as u32, prev.y as u32, [20, 60, 200]);
    }
    encode_png(c.w, c.h, &c.rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_rising_values_bottom_left_to_top_right() {
        let v: Vec<u64> = (0..100).map(|i| i * 10).collect();
        let png = plot_dist(&v, "percentile", "wss", "t", &|x| format!("{x:.0}")).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(png));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        r.next_frame(&mut buf).unwrap();
        let px = |x: u32, y: u32| {
            let i = ((y * W + x) * 3) as usize;
            [buf[i], buf[i + 1], buf[i + 2]]
        };
        let blue = [20, 60, 200];
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        assert_eq!(
            px(LEFT, TOP + ph),
            blue,
            "the first value at the bottom left"
        );
        assert_eq!(px(LEFT + pw, TOP), blue, "the largest at the top right");
        assert_ne!(
            px(LEFT + pw, TOP + ph - 1),
            blue,
            "nothing at the bottom right"
        );
        assert!(plot_dist(&[], "x", "y", "t", &|x| x.to_string()).is_err());
    }
}
