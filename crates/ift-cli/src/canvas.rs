//! A tiny RGB raster canvas: thick lines, filled rectangles and text in a
//! built-in bitmap font, saved as PNG with the `png` crate. Enough for line
//! plots without a plotting library, system fonts or fontconfig.

mod font;

use std::path::Path;

use anyhow::Context;

/// An sRGB colour.
pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];

/// A `width × height` image, origin top-left, rows stored top to bottom.
pub struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    /// A canvas filled with `background`.
    pub fn new(width: usize, height: usize, background: Rgb) -> Self {
        Canvas {
            width,
            height,
            pixels: background.repeat(width * height),
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Colours one pixel; coordinates off the canvas are ignored, so shapes
    /// may be clipped freely.
    pub fn set(&mut self, x: i64, y: i64, colour: Rgb) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        let i = 3 * (y as usize * self.width + x as usize);
        self.pixels[i..i + 3].copy_from_slice(&colour);
    }

    /// Fills the rectangle with top-left `(x, y)` and the given size.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, colour: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, colour);
            }
        }
    }

    /// A line `thickness` pixels wide from `(x0, y0)` to `(x1, y1)`, drawn by
    /// stamping a square at every step of the longer axis, so steep and
    /// shallow lines look equally heavy.
    pub fn line(
        &mut self,
        (x0, y0): (f64, f64),
        (x1, y1): (f64, f64),
        thickness: i64,
        colour: Rgb,
    ) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i64;
        let half = thickness / 2;
        for i in 0..=steps {
            let f = i as f64 / steps as f64;
            let x = (x0 + f * (x1 - x0)).round() as i64;
            let y = (y0 + f * (y1 - y0)).round() as i64;
            self.fill_rect(x - half, y - half, thickness, thickness, colour);
        }
    }

    /// Pixel width of `text` drawn at `scale`.
    pub fn text_width(text: &str, scale: i64) -> i64 {
        text.chars().count() as i64 * (font::WIDTH as i64 + 1) * scale
    }

    /// Pixel height of a line of text at `scale`, descenders included.
    pub fn text_height(scale: i64) -> i64 {
        font::HEIGHT as i64 * scale
    }

    /// Draws `text` with its top-left corner at `(x, y)`, each font pixel
    /// a `scale × scale` square.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, colour: Rgb) {
        let advance = (font::WIDTH as i64 + 1) * scale;
        for (i, c) in text.chars().enumerate() {
            let left = x + i as i64 * advance;
            for (row, bits) in font::glyph(c).iter().enumerate() {
                for col in 0..font::WIDTH {
                    if bits & (1 << (font::WIDTH - 1 - col)) != 0 {
                        let (px, py) = (left + col as i64 * scale, y + row as i64 * scale);
                        self.fill_rect(px, py, scale, scale, colour);
                    }
                }
            }
        }
    }

    /// Writes the canvas as an 8-bit RGB PNG.
    pub fn save_png(&self, path: &Path) -> anyhow::Result<()> {
        // Encoded in memory, then written durably and atomically.
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let writer = encoder
            .write_header()
            .and_then(|mut w| w.write_image_data(&self.pixels).map(|()| w))
            .with_context(|| format!("writing {}", path.display()))?;
        writer
            .finish()
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(ift::model::write_file_atomically(path, &bytes)?)
    }
}
