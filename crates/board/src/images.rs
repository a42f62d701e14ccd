//! Checking uploads and making thumbnails: the type comes from the bytes,
//! never from the file name or the browser, and decoding is bounded so a
//! small file cannot expand into gigabytes (a decompression bomb).

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};

use crate::media::ImageKind;

/// Side of the square thumbnail, as the original board made them.
pub const THUMB_SIDE: u32 = 150;

/// Why an upload was refused, in words for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Not one of the accepted formats (by content).
    #[error("That file is not an image the board accepts (JPEG, PNG, GIF, BMP or WebP).")]
    UnsupportedType,
    /// Wider or taller than allowed, or would need too much memory.
    #[error("That image is too large to process (at most {0} pixels on a side).")]
    TooManyPixels(u32),
    /// The content is damaged.
    #[error("That image could not be read; the file may be damaged.")]
    Corrupt,
}

/// A checked upload, ready to store.
#[derive(Debug)]
pub struct ProcessedImage {
    /// Kind of the original (which is stored unchanged).
    pub kind: ImageKind,
    /// Kind of the thumbnail (JPEG for JPEGs, PNG otherwise, to keep alpha).
    pub thumb_kind: ImageKind,
    /// The thumbnail's bytes.
    pub thumbnail: Vec<u8>,
    /// Width and height of the original.
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

/// Checks `bytes` and makes a 150x150 thumbnail (cropped to fill the square).
/// CPU-bound: call it from a blocking task.
///
/// # Errors
/// See [`ImageError`].
pub fn process(bytes: &[u8], max_side: u32) -> Result<ProcessedImage, ImageError> {
    let kind = sniff(bytes).ok_or(ImageError::UnsupportedType)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    // Enough for a max_side² RGBA image, capped at 1 GiB.
    let pixels = u64::from(max_side) * u64::from(max_side);
    limits.max_alloc = Some(pixels.saturating_mul(4).min(1 << 30));

    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| ImageError::Corrupt)?;
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ImageError::TooManyPixels(max_side),
        image::ImageError::Unsupported(_) => ImageError::UnsupportedType,
        _ => ImageError::Corrupt,
    })?;
    let dimensions = (decoded.width(), decoded.height());
    let thumb = decoded.resize_to_fill(
        THUMB_SIDE,
        THUMB_SIDE,
        image::imageops::FilterType::Triangle,
    );

    let (thumb_kind, format) = match kind {
        ImageKind::Jpeg => (ImageKind::Jpeg, ImageFormat::Jpeg),
        _ => (ImageKind::Png, ImageFormat::Png),
    };
    let thumb = if format == ImageFormat::Jpeg {
        image::DynamicImage::ImageRgb8(thumb.to_rgb8())
    } else {
        thumb
    };
    let mut out = Cursor::new(Vec::new());
    thumb
        .write_to(&mut out, format)
        .map_err(|_| ImageError::Corrupt)?;
    Ok(ProcessedImage {
        kind,
        thumb_kind,
        thumbnail: out.into_inner(),
        dimensions,
    })
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
mod tests {
    use super::*;
    use image::{DynamicImage, RgbImage};

    fn picture(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        encode(&DynamicImage::ImageRgb8(img), format).expect("encode")
    }

    #[test]
    fn every_accepted_format_gets_a_square_thumbnail() {
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::Bmp,
            ImageFormat::WebP,
        ] {
            let processed = process(&picture(400, 200, format), 4000).expect("processed");
            assert_eq!(processed.dimensions, (400, 200));
            let thumb = image::load_from_memory(&processed.thumbnail).expect("thumbnail decodes");
            assert_eq!(
                (thumb.width(), thumb.height()),
                (THUMB_SIDE, THUMB_SIDE),
                "{format:?}"
            );
        }
    }

    #[test]
    fn content_decides_not_the_name() {
        let fake_gif = process(b"GIF89a but not really", 100).map(|p| p.kind);
        assert!(
            matches!(
                fake_gif,
                Err(ImageError::Corrupt | ImageError::TooManyPixels(_))
            ),
            "{fake_gif:?}"
        );
        let png = encode(
            &DynamicImage::ImageRgb8(RgbImage::new(40, 40)),
            ImageFormat::Png,
        );
        let truncated = &png.expect("png")[..50];
        assert_eq!(
            process(truncated, 100).map(|p| p.kind),
            Err(ImageError::Corrupt)
        );
        assert_eq!(
            process(b"<html>hi</html>", 100).map(|p| p.kind),
            Err(ImageError::UnsupportedType)
        );
        let tiff_header = b"II*\0\x08\0\0\0\0\0";
        assert_eq!(
            process(tiff_header, 100).map(|p| p.kind),
            Err(ImageError::UnsupportedType)
        );
    }

    #[test]
    fn oversized_images_are_refused_before_decoding() {
        let big = picture(300, 20, ImageFormat::Png);
        assert_eq!(
            process(&big, 200).map(|p| p.kind),
            Err(ImageError::TooManyPixels(200))
        );
    }
}
