//! Checking uploads, storing a clean copy and making thumbnails.
//!
//! The type comes from the bytes, never from the file name or the browser.
//! Decoding is bounded twice, so a small file cannot expand into gigabytes
//! (a decompression bomb): every side is at most [`Rules::max_side`], and
//! the memory the decoder will need is worked out from the header, before
//! any pixel is decoded, and refused above [`Rules::decode_memory`]. The
//! estimate is the decoded buffer (pixels × bytes per pixel of the
//! decoder's colour type) plus what the format's decoder keeps beside it:
//! a progressive JPEG holds every DCT coefficient (2 bytes per sample of
//! each component, with its subsampling), WebP a second ARGB or YUV buffer,
//! GIF a frame buffer beside the canvas; JPEG also copies its input.
//! Only the first frame of an animation is decoded. How many decodes run at
//! once is the decoding pool's business (`crate::workers`).
//!
//! What is stored is never the upload: the decoded image is turned upright
//! (EXIF orientation), scaled down to [`Rules::max_stored_side`] and
//! encoded again, so no metadata (EXIF with GPS, comments) survives and
//! nothing stored is itself a bomb. JPEG stays JPEG (quality 85); PNG, GIF,
//! BMP and WebP become PNG (lossless, alpha kept).

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::media::ImageKind;

/// Side of the square thumbnail, as the original board made them.
pub const THUMB_SIDE: u32 = 150;

/// Quality of stored and thumbnail JPEGs.
const JPEG_QUALITY: u8 = 85;

/// Limits every decode obeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Largest width or height accepted, pixels.
    pub max_side: u32,
    /// Memory one decode may need, bytes (see the module docs).
    pub decode_memory: u64,
    /// Longest side of the stored image, pixels; larger ones are scaled.
    pub max_stored_side: u32,
}

impl Rules {
    /// The given side limit, a generous budget and a 2048-pixel store.
    pub fn with_max_side(max_side: u32) -> Self {
        Self {
            max_side,
            decode_memory: 1 << 30,
            max_stored_side: 2048,
        }
    }
}

/// Why an upload was refused, in words for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Not one of the accepted formats (by content).
    #[error("That file is not an image the board accepts (JPEG, PNG, GIF, BMP or WebP).")]
    UnsupportedType,
    /// Wider or taller than allowed.
    #[error("That image is too large to process (at most {0} pixels on a side).")]
    TooManyPixels(u32),
    /// Within the side limit, but decoding it would need too much memory.
    #[error(
        "That image is too large to process ({width}x{height} pixels needs more memory than the board allows); please scale it down."
    )]
    TooMuchMemory {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// The content is damaged (or cut short).
    #[error("That image could not be read; the file may be damaged.")]
    Corrupt,
}

/// A checked upload, ready to store.
#[derive(Debug)]
pub struct ProcessedImage {
    /// Kind of the stored image: JPEG for JPEGs, PNG for the rest.
    pub kind: ImageKind,
    /// The stored image: upright, scaled down, re-encoded, no metadata.
    pub full: Vec<u8>,
    /// Kind of the thumbnail (JPEG for JPEGs, PNG otherwise, to keep alpha).
    pub thumb_kind: ImageKind,
    /// The thumbnail's bytes.
    pub thumbnail: Vec<u8>,
    /// Width and height of the stored image.
    pub dimensions: (u32, u32),
}

/// The kind of image in `bytes`, judged by content.
pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
    Some(match image::guess_format(bytes).ok()? {
        ImageFormat::Jpeg => ImageKind::Jpeg,
        ImageFormat::Png => ImageKind::Png,
        ImageFormat::Gif => ImageKind::Gif,
        ImageFormat::Bmp => ImageKind::Bmp,
        ImageFormat::WebP => ImageKind::WebP,
        _ => return None,
    })
}

/// Checks `bytes`, makes the image to store and a 150x150 thumbnail
/// (cropped to fill the square). CPU-bound: call it from a blocking task
/// (the decoding pool).
///
/// # Errors
/// See [`ImageError`].
pub fn process(bytes: &[u8], rules: &Rules) -> Result<ProcessedImage, ImageError> {
    let kind = sniff(bytes).ok_or(ImageError::UnsupportedType)?;
    if !intact(kind, bytes) {
        return Err(ImageError::Corrupt);
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(rules.max_side);
    limits.max_image_height = Some(rules.max_side);
    // A second fence for the decoders that count their allocations.
    limits.max_alloc = Some(rules.decode_memory);

    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| ImageError::Corrupt)?;
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| refusal(&e, rules))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt);
    }
    if width > rules.max_side || height > rules.max_side {
        return Err(ImageError::TooManyPixels(rules.max_side));
    }
    let needed = decode_memory(kind, bytes, width, height, decoder.color_type());
    if needed > rules.decode_memory {
        return Err(ImageError::TooMuchMemory { width, height });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut decoded = DynamicImage::from_decoder(decoder).map_err(|e| refusal(&e, rules))?;

    let longest = rules.max_stored_side.max(THUMB_SIDE);
    if decoded.width() > longest || decoded.height() > longest {
        // Area averaging: every source pixel counts once, so it does not
        // alias when shrinking, and it needs no buffer but the result
        // (`resize` keeps a width × new height f32 RGBA buffer: 128 MiB for
        // 4096 → 2048).
        decoded = decoded.thumbnail(longest, longest);
    }
    decoded.apply_orientation(orientation);

    let (stored_kind, format) = match kind {
        ImageKind::Jpeg => (ImageKind::Jpeg, ImageFormat::Jpeg),
        _ => (ImageKind::Png, ImageFormat::Png),
    };
    let full = encode_as(&decoded, format)?;
    let thumb = decoded.resize_to_fill(
        THUMB_SIDE,
        THUMB_SIDE,
        image::imageops::FilterType::Triangle,
    );
    Ok(ProcessedImage {
        kind: stored_kind,
        full,
        thumb_kind: stored_kind,
        thumbnail: encode_as(&thumb, format)?,
        dimensions: (decoded.width(), decoded.height()),
    })
}

fn refusal(error: &image::ImageError, rules: &Rules) -> ImageError {
    match error {
        image::ImageError::Limits(_) => ImageError::TooManyPixels(rules.max_side),
        image::ImageError::Unsupported(_) => ImageError::UnsupportedType,
        _ => ImageError::Corrupt,
    }
}

/// JPEG (quality 85, RGB or grey) or PNG, with no metadata.
fn encode_as(image: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>, ImageError> {
    let mut out = Cursor::new(Vec::new());
    let written = if format == ImageFormat::Jpeg {
        let encoder = JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
        match image {
            DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => {
                image.write_with_encoder(encoder)
            }
            other => DynamicImage::ImageRgb8(other.to_rgb8()).write_with_encoder(encoder),
        }
    } else {
        image.write_to(&mut out, format)
    };
    written.map_err(|_| ImageError::Corrupt)?;
    Ok(out.into_inner())
}

/// Bytes the decoder of `kind` needs for a `width` x `height` image decoded
/// as `color` (see the module docs for what is counted).
fn decode_memory(
    kind: ImageKind,
    bytes: &[u8],
    width: u32,
    height: u32,
    color: image::ColorType,
) -> u64 {
    let pixels = u64::from(width) * u64::from(height);
    let output = pixels.saturating_mul(u64::from(color.bytes_per_pixel()));
    let beside = match kind {
        ImageKind::Jpeg => {
            let coefficients = jpeg_frame(bytes)
                .filter(|f| f.progressive)
                .map_or(0, |f| f.coefficient_bytes());
            // The decoder keeps a copy of the file.
            coefficients.saturating_add(bytes.len() as u64)
        }
        // Lossless: an ARGB u32 per pixel beside the output; lossy: YUV
        // planes and the output's RGBA.
        ImageKind::WebP => pixels.saturating_mul(4),
        // A first frame smaller than the canvas is decoded beside it.
        ImageKind::Gif => output,
        ImageKind::Png | ImageKind::Bmp => 0,
    };
    output.saturating_add(beside)
}

/// Whether the file reaches its format's end marker: some decoders fill a
/// cut-short image with grey instead of failing (zune-jpeg does).
fn intact(kind: ImageKind, bytes: &[u8]) -> bool {
    match kind {
        ImageKind::Jpeg => jpeg_frame(bytes).is_some_and(|f| f.complete),
        ImageKind::Png => png_has_iend(bytes),
        ImageKind::WebP => {
            // The RIFF header's size covers the rest of the file.
            bytes.len() >= 12
                && u64::from(u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]])) + 8
                    <= bytes.len() as u64
        }
        // The trailer (zero padding after it is tolerated): a GIF cut
        // after its last frame's data otherwise decodes.
        ImageKind::Gif => bytes
            .iter()
            .rposition(|&b| b != 0)
            .is_some_and(|last| bytes[last] == 0x3B),
        // Its decoder fails on missing rows.
        ImageKind::Bmp => true,
    }
}

/// What a JPEG's markers say before its pixels are decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JpegFrame {
    progressive: bool,
    width: u64,
    height: u64,
    /// (horizontal, vertical) sampling factor of each component.
    sampling: Vec<(u64, u64)>,
    /// An end-of-image marker follows the first scan.
    complete: bool,
}

impl JpegFrame {
    /// What a progressive decode keeps: every coefficient of every
    /// component as an `i16`, over whole MCUs.
    fn coefficient_bytes(&self) -> u64 {
        let h_max = self.sampling.iter().map(|s| s.0).max().unwrap_or(1).max(1);
        let v_max = self.sampling.iter().map(|s| s.1).max().unwrap_or(1).max(1);
        let mcus_x = self.width.div_ceil(8 * h_max);
        let mcus_y = self.height.div_ceil(8 * v_max);
        self.sampling
            .iter()
            .map(|&(h, v)| mcus_x * mcus_y * 64 * h * v * 2)
            .sum()
    }
}

/// Walks a JPEG's marker segments to its frame header and first scan.
fn jpeg_frame(bytes: &[u8]) -> Option<JpegFrame> {
    let mut at = 2; // past SOI
    let mut frame: Option<JpegFrame> = None;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = bytes[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        if matches!(marker, 0x01 | 0xD0..=0xD8) {
            at += 2; // a marker without a segment
            continue;
        }
        let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let segment = bytes.get(at + 4..at + 2 + length)?;
        match marker {
            // Start of frame (not DHT 0xC4, JPG 0xC8, DAC 0xCC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let count = usize::from(*segment.get(5)?);
                let sampling = (0..count)
                    .map(|i| {
                        let factors = *segment.get(6 + 3 * i + 1)?;
                        Some((u64::from(factors >> 4), u64::from(factors & 0x0F)))
                    })
                    .collect::<Option<Vec<_>>>()?;
                frame = Some(JpegFrame {
                    progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
                    height: u64::from(u16::from_be_bytes([segment[1], segment[2]])),
                    width: u64::from(u16::from_be_bytes([segment[3], segment[4]])),
                    sampling,
                    complete: false,
                });
            }
            // Start of scan: entropy-coded data follows, where 0xFF is
            // always stuffed or a marker, so an EOI in the rest is real.
            0xDA => {
                let mut frame = frame?;
                let rest = &bytes[at + 2 + length..];
                frame.complete = rest.windows(2).any(|w| w == [0xFF, 0xD9]);
                return Some(frame);
            }
            _ => {}
        }
        at += 2 + length;
    }
    None
}

/// Whether a PNG's chunks run, whole, up to an `IEND`.
fn png_has_iend(bytes: &[u8]) -> bool {
    let mut at = 8; // past the signature
    while at + 12 <= bytes.len() {
        let length = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let kind = &bytes[at + 4..at + 8];
        let Some(next) = (at + 12).checked_add(length as usize) else {
            return false;
        };
        if next > bytes.len() {
            return false;
        }
        if kind == b"IEND" {
            return true;
        }
        at = next;
    }
    false
}

/// Encodes a generated picture, for demo data and tests.
///
/// # Errors
/// When the encoder fails.
pub fn encode(
    image: &image::DynamicImage,
    format: ImageFormat,
) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests;
