//! An RGB canvas that embedded-graphics draws lines and text on, and its
//! PNG encoding: what the heatmap picture and the distribution plots share.

use crate::DamoError;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;

/// An RGB canvas embedded-graphics draws on.
pub(crate) struct Canvas {
    pub(crate) w: u32,
    pub(crate) h: u32,
    pub(crate) rgb: Vec<u8>,
}

impl Canvas {
    pub(crate) fn new(w: u32, h: u32) -> Self {
        Self {
            w,
            h,
            rgb: vec![255; (w * h * 3) as usize],
        }
    }
    pub(crate) fn put(&mut self, x: u32, y: u32, c: [u8; 3]) {
        if x < self.w && y < self.h {
            let i = ((y * self.w + x) * 3) as usize;
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.w, self.h)
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = std::convert::Infallible;
    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        it: I,
    ) -> Result<(), Self::Error> {
        for Pixel(p, c) in it {
            if p.x >= 0 && p.y >= 0 {
                self.put(p.x as u32, p.y as u32, [c.r(), c.g(), c.b()]);
            }
        }
        Ok(())
    }
}

pub(crate) fn encode_png(w: u32, h: u32, rgb: &[u8]) -> Result<Vec<u8>, DamoError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc
        .write_header()
        .map_err(|e| DamoError::Report(format!("png: {e}")))?;
    wr.write_image_data(rgb)
        .map_err(|e| DamoError::Report(format!("png: {e}")))?;
    wr.finish()
        .map_err(|e| DamoError::Report(format!("png: {e}")))?;
    Ok(out)
}
