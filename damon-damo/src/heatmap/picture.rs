//! The heatmap as a picture a person reads: the map (time along x, left
//! to right; addresses along y, low at the bottom), axes with time and
//! address ticks, a colour bar with the heat's unit, and a title. PNG is
//! drawn here (`embedded-graphics` for lines and text on an RGB canvas,
//! `png` to encode it); SVG draws the axes and text as vectors around the
//! map, embedded as a PNG.
//!
//! Address ticks are offsets from the range's start, which the axis title
//! gives in hex: a process's addresses near 127 TiB all print alike as
//! sizes, their offsets do not.

use super::{hot_colour, Heatmap};
use crate::canvas::{encode_png, Canvas};
use crate::fmt::{format_sz, format_time_ns};
use crate::DamoError;
use embedded_graphics::mono_font::ascii::FONT_6X10;
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Line, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};

/// Margins around the map (pixels).
const LEFT: u32 = 84;
const TOP: u32 = 30;
const BOTTOM: u32 = 48;
const RIGHT: u32 = 120;
/// Colour bar width.
const BAR: u32 = 16;
/// Ticks per axis.
const TICKS: u32 = 5;
/// Colour of pixels no region touched.
const UNTOUCHED: [u8; 3] = [200, 200, 200];

/// Tick labels of both axes and the colour bar's ends.
struct Labels {
    time: Vec<(f64, String)>,
    addr: Vec<(f64, String)>,
    addr_title: String,
    time_title: String,
    heat: (String, String, String),
}

impl Heatmap {
    fn labels(&self) -> Labels {
        let time_len = self.time_unit as f64 * self.time_resol as f64;
        let addr_len = self.addr_unit as f64 * self.addr_resol as f64;
        let frac = |i: u32| f64::from(i) / f64::from(TICKS - 1);
        let time = (0..TICKS)
            .map(|i| {
                let t = self.time_start as f64 + frac(i) * time_len;
                (frac(i), format_time_ns(t))
            })
            .collect();
        let addr = (0..TICKS)
            .map(|i| {
                let off = frac(i) * addr_len;
                let label = if i == 0 {
                    "+0".into()
                } else {
                    format!("+{}", format_sz(off))
                };
                (frac(i), label)
            })
            .collect();
        let (hi, lo) = self.highest_lowest().unwrap_or((0.0, 0.0));
        let unit = if self.heat_unit == "hz" {
            "accesses/s"
        } else {
            "accesses (samples)"
        };
        Labels {
            time,
            addr,
            addr_title: format!(
                "address: {:#x} + offset ({} per row)",
                self.addr_start,
                format_sz(self.addr_unit as f64)
            ),
            time_title: format!(
                "time ({} per column)",
                format_time_ns(self.time_unit as f64)
            ),
            heat: (format!("{hi:.1}"), format!("{lo:.1}"), unit.into()),
        }
    }

    /// The map's colour at image column `x`, row `y` (of the map area).
    fn colour_at(&self, x: usize, y: usize, hi: f64, lo: f64) -> [u8; 3] {
        let a = self.addr_resol - 1 - y;
        match self.heat(x, a) {
            None => UNTOUCHED,
            Some(v) => hot_colour((v - lo) / if hi > lo { hi - lo } else { 1.0 }),
        }
    }

    /// The picture as a PNG: the map, one image pixel per map pixel, with
    /// axes, ticks, the colour bar and `title`.
    pub fn to_png(&self, title: &str) -> Result<Vec<u8>, DamoError> {
        let (mw, mh) = (self.time_resol as u32, self.addr_resol as u32);
        let mut c = Canvas::new(LEFT + mw + RIGHT, TOP + mh + BOTTOM);
        let (hi, lo) = self.highest_lowest().unwrap_or((1.0, 0.0));
        for y in 0..mh {
            for x in 0..mw {
                let col = self.colour_at(x as usize, y as usize, hi, lo);
                c.put(LEFT + x, TOP + y, col);
            }
        }
        self.draw_frame(&mut c, mw, mh, title);
        encode_png(c.w, c.h, &c.rgb)
    }

    fn draw_frame(&self, c: &mut Canvas, mw: u32, mh: u32, title: &str) {
        let black = Rgb888::BLACK;
        let text = MonoTextStyle::new(&FONT_6X10, black);
        let at = |align: Alignment, base: Baseline| {
            TextStyleBuilder::new()
                .alignment(align)
                .baseline(base)
                .build()
        };
        let line = |c: &mut Canvas, a: (u32, u32), b: (u32, u32)| {
            let _ = Line::new(
                Point::new(a.0 as i32, a.1 as i32),
                Point::new(b.0 as i32, b.1 as i32),
            )
            .into_styled(PrimitiveStyle::with_stroke(black, 1))
            .draw(c);
        };
        let l = self.labels();
        let (x0, y0, x1, y1) = (LEFT - 1, TOP - 1, LEFT + mw, TOP + mh);
        line(c, (x0, y0), (x1, y0));
        line(c, (x0, y1), (x1, y1));
        line(c, (x0, y0), (x0, y1));
        line(c, (x1, y0), (x1, y1));
        let pt = |x: u32, y: u32| Point::new(x as i32, y as i32);
        for (f, s) in &l.time {
            let x = LEFT + (f * f64::from(mw.saturating_sub(1))) as u32;
            line(c, (x, y1), (x, y1 + 4));
            let _ =
                Text::with_text_style(s, pt(x, y1 + 6), text, at(Alignment::Center, Baseline::Top))
                    .draw(c);
        }
        for (f, s) in &l.addr {
            let y = TOP + mh.saturating_sub(1) - (f * f64::from(mh.saturating_sub(1))) as u32;
            line(c, (x0 - 4, y), (x0, y));
            let _ = Text::with_text_style(
                s,
                pt(x0 - 6, y),
                text,
                at(Alignment::Right, Baseline::Middle),
            )
            .draw(c);
        }
        let _ = Text::with_text_style(
            &l.time_title,
            pt(LEFT + mw / 2, y1 + 22),
            text,
            at(Alignment::Center, Baseline::Top),
        )
        .draw(c);
        let _ = Text::with_text_style(
            &l.addr_title,
            pt(4, TOP - 14),
            text,
            at(Alignment::Left, Baseline::Top),
        )
        .draw(c);
        let _ = Text::with_text_style(
            title,
            pt(LEFT + mw / 2, 4),
            text,
            at(Alignment::Center, Baseline::Top),
        )
        .draw(c);
        // colour bar: hottest at the top
        let bx = x1 + 14;
        for y in 0..mh {
            let f = 1.0 - f64::from(y) / f64::from(mh.max(2) - 1);
            for x in 0..BAR {
                c.put(bx + x, TOP + y, hot_colour(f));
            }
        }
        let _ = Rectangle::new(pt(bx - 1, TOP - 1), Size::new(BAR + 2, mh + 2))
            .into_styled(PrimitiveStyle::with_stroke(black, 1))
            .draw(c);
        let lx = bx + BAR + 4;
        let _ = Text::with_text_style(
            &l.heat.0,
            pt(lx, TOP),
            text,
            at(Alignment::Left, Baseline::Top),
        )
        .draw(c);
        let _ = Text::with_text_style(
            &l.heat.1,
            pt(lx, y1),
            text,
            at(Alignment::Left, Baseline::Bottom),
        )
        .draw(c);
        let _ = Text::with_text_style(
            &l.heat.2,
            pt(bx, y1 + 22),
            text,
            at(Alignment::Left, Baseline::Top),
        )
        .draw(c);
    }

    /// The picture as SVG: axes, ticks, labels, the colour bar and the
    /// title as vectors, the map itself as an embedded PNG (scaled without
    /// smoothing).
    pub fn to_svg(&self, title: &str) -> Result<String, DamoError> {
        use base64::Engine as _;
        use std::fmt::Write as _;
        let (mw, mh) = (self.time_resol as u32, self.addr_resol as u32);
        let (hi, lo) = self.highest_lowest().unwrap_or((1.0, 0.0));
        let mut rgb = Vec::with_capacity((mw * mh * 3) as usize);
        for y in 0..mh as usize {
            for x in 0..mw as usize {
                rgb.extend_from_slice(&self.colour_at(x, y, hi, lo));
            }
        }
        let map = base64::engine::general_purpose::STANDARD.encode(encode_png(mw, mh, &rgb)?);
        let mut bar = Vec::with_capacity((mh * 3) as usize);
        for y in 0..mh {
            bar.extend_from_slice(&hot_colour(1.0 - f64::from(y) / f64::from(mh.max(2) - 1)));
        }
        let bar = base64::engine::general_purpose::STANDARD.encode(encode_png(1, mh, &bar)?);
        let l = self.labels();
        let (w, h) = (LEFT + mw + RIGHT, TOP + mh + BOTTOM);
        let (x1, y1) = (LEFT + mw, TOP + mh);
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="10">"#
        );
        let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<image x="{LEFT}" y="{TOP}" width="{mw}" height="{mh}" style="image-rendering:pixelated" href="data:image/png;base64,{map}"/>"#
        );
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{TOP}" width="{mw}" height="{mh}" fill="none" stroke="black"/>"#
        );
        for (f, t) in &l.time {
            let x = f64::from(LEFT) + f * f64::from(mw);
            let _ = writeln!(
                s,
                r#"<line x1="{x}" y1="{y1}" x2="{x}" y2="{}" stroke="black"/><text x="{x}" y="{}" text-anchor="middle">{}</text>"#,
                y1 + 4,
                y1 + 15,
                esc(t)
            );
        }
        for (f, t) in &l.addr {
            let y = f64::from(y1) - f * f64::from(mh);
            let _ = writeln!(
                s,
                r#"<line x1="{}" y1="{y}" x2="{LEFT}" y2="{y}" stroke="black"/><text x="{}" y="{y}" text-anchor="end" dominant-baseline="middle">{}</text>"#,
                LEFT - 4,
                LEFT - 6,
                esc(t)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + mw / 2,
            y1 + 34,
            esc(&l.time_title)
        );
        let _ = writeln!(
            s,
            r#"<text x="4" y="{}">{}</text>"#,
            TOP - 8,
            esc(&l.addr_title)
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="14" text-anchor="middle" font-size="12">{}</text>"#,
            LEFT + mw / 2,
            esc(title)
        );
        let bx = x1 + 14;
        let _ = writeln!(
            s,
            r#"<image x="{bx}" y="{TOP}" width="{BAR}" height="{mh}" preserveAspectRatio="none" href="data:image/png;base64,{bar}"/><rect x="{bx}" y="{TOP}" width="{BAR}" height="{mh}" fill="none" stroke="black"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" dominant-baseline="hanging">{}</text>"#,
            bx + BAR + 4,
            TOP,
            esc(&l.heat.0)
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{y1}">{}</text>"#,
            bx + BAR + 4,
            esc(&l.heat.1)
        );
        let _ = writeln!(
            s,
            r#"<text x="{bx}" y="{}">{}</text>"#,
            y1 + 34,
            esc(&l.heat.2)
        );
        s.push_str("</svg>\n");
        Ok(s)
    }
}
