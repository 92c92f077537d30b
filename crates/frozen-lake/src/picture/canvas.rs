//! An RGB pixel buffer with the few drawing operations the charts need.

use std::path::Path;

use super::font::glyph;
use crate::error::LakeError;

pub type Rgb = [u8; 3];

pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pixels: Vec<Rgb>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: Rgb) -> Self {
        Self {
            width,
            height,
            pixels: vec![background; width * height],
        }
    }

    pub fn pixel(&self, x: usize, y: usize) -> Rgb {
        self.pixels[y * self.width + x]
    }

    /// Sets a pixel; points outside the canvas are ignored, so shapes may overhang.
    pub fn put(&mut self, x: i64, y: i64, color: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = color;
        }
    }

    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, color: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.put(xx, yy, color);
            }
        }
    }

    /// A rectangle outline `thickness` pixels wide, drawn inside the box.
    pub fn outline(&mut self, x: i64, y: i64, w: i64, h: i64, thickness: i64, color: Rgb) {
        self.fill_rect(x, y, w, thickness, color);
        self.fill_rect(x, y + h - thickness, w, thickness, color);
        self.fill_rect(x, y, thickness, h, color);
        self.fill_rect(x + w - thickness, y, thickness, h, color);
    }

    /// A straight line of the given width (a square brush stepped along it).
    pub fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), width: i64, color: Rgb) {
        let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for i in 0..=n {
            let t = i as f64 / n as f64;
            let (x, y) = (
                (x0 + t * (x1 - x0)).round() as i64,
                (y0 + t * (y1 - y0)).round() as i64,
            );
            self.fill_rect(x - width / 2, y - width / 2, width, width, color);
        }
    }

    /// Text in the 3×5 font, each font pixel drawn as a `scale`×`scale` square;
    /// `(x, y)` is the top-left corner. Returns the width drawn.
    pub fn text(&mut self, x: i64, y: i64, scale: i64, color: Rgb, s: &str) -> i64 {
        for (i, c) in s.chars().enumerate() {
            let left = x + i as i64 * 4 * scale;
            for (row, bits) in glyph(c).iter().enumerate() {
                for (col, b) in bits.chars().enumerate() {
                    if b == '#' {
                        self.fill_rect(
                            left + col as i64 * scale,
                            y + row as i64 * scale,
                            scale,
                            scale,
                            color,
                        );
                    }
                }
            }
        }
        text_width(s, scale)
    }

    pub fn save_png(&self, path: &Path) -> Result<(), LakeError> {
        let io = |source| LakeError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut encoder = png::Encoder::new(
            std::io::BufWriter::new(file),
            self.width as u32,
            self.height as u32,
        );
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Best);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.pixels.concat())?;
        writer.finish()?;
        Ok(())
    }
}

/// Width in pixels of `s` at `scale` (glyphs are 3 wide plus 1 of spacing).
pub fn text_width(s: &str, scale: i64) -> i64 {
    (s.chars().count() as i64 * 4 - 1).max(0) * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_land_where_asked_and_overhang_is_clipped() {
        let mut c = Canvas::new(10, 10, [255; 3]);
        c.fill_rect(8, 8, 5, 5, [0; 3]);
        assert_eq!((c.pixel(9, 9), c.pixel(7, 7)), ([0; 3], [255; 3]));
        c.text(0, 0, 1, [1, 2, 3], "I"); // top row of I is ###
        assert_eq!(
            (c.pixel(0, 0), c.pixel(2, 0), c.pixel(0, 1)),
            ([1, 2, 3], [1, 2, 3], [255; 3])
        );
    }
}
