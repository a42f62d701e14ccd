use super::*;
use image::{DynamicImage, RgbImage};

fn picture(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    encode(&DynamicImage::ImageRgb8(img), format).expect("encode")
}

fn rules(max_side: u32) -> Rules {
    Rules::with_max_side(max_side)
}

const FORMATS: [ImageFormat; 5] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::Gif,
    ImageFormat::Bmp,
    ImageFormat::WebP,
];

/// A PNG chunk with its CRC.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    let mut out = u32::try_from(data.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    out
}

/// A `w`x`h` RGBA PNG whose pixel data is `rows` zero rows (so it can claim
/// any size and stay small).
fn png_claiming(w: u32, h: u32, rows: u32) -> Vec<u8> {
    use std::io::Write;
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let row = vec![0_u8; 1 + 4 * w as usize];
    for _ in 0..rows {
        z.write_all(&row).expect("zlib");
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &z.finish().expect("zlib")));
    png.extend(chunk(b"IEND", &[]));
    png
}

#[test]
fn every_accepted_format_is_stored_again_with_a_square_thumbnail() {
    for format in FORMATS {
        let processed = process(&picture(400, 200, format), &rules(4000)).expect("processed");
        assert_eq!(processed.dimensions, (400, 200));
        let expected = if format == ImageFormat::Jpeg {
            ImageKind::Jpeg
        } else {
            ImageKind::Png
        };
        assert_eq!(processed.kind, expected, "{format:?}");
        assert_eq!(sniff(&processed.full), Some(expected), "{format:?}");
        let full = image::load_from_memory(&processed.full).expect("stored image decodes");
        assert_eq!((full.width(), full.height()), (400, 200), "{format:?}");
        let thumb = image::load_from_memory(&processed.thumbnail).expect("thumbnail decodes");
        assert_eq!(
            (thumb.width(), thumb.height()),
            (THUMB_SIDE, THUMB_SIDE),
            "{format:?}"
        );
    }
}

#[test]
fn large_images_are_stored_scaled_to_the_longest_side() {
    let rules = Rules {
        max_stored_side: 300,
        ..rules(4000)
    };
    for format in [ImageFormat::Jpeg, ImageFormat::Png] {
        let processed = process(&picture(1200, 600, format), &rules).expect("processed");
        assert_eq!(processed.dimensions, (300, 150), "{format:?}");
        let full = image::load_from_memory(&processed.full).expect("decodes");
        assert_eq!((full.width(), full.height()), (300, 150));
    }
}

#[test]
fn content_decides_not_the_name() {
    let fake_gif = process(b"GIF89a but not really", &rules(100)).map(|p| p.kind);
    assert!(
        matches!(
            fake_gif,
            Err(ImageError::Corrupt | ImageError::TooManyPixels(_))
        ),
        "{fake_gif:?}"
    );
    assert_eq!(
        process(b"<html>hi</html>", &rules(100)).map(|p| p.kind),
        Err(ImageError::UnsupportedType)
    );
    let tiff_header = b"II*\0\x08\0\0\0\0\0";
    assert_eq!(
        process(tiff_header, &rules(100)).map(|p| p.kind),
        Err(ImageError::UnsupportedType)
    );
}

#[test]
fn truncated_images_of_every_format_are_refused() {
    for format in FORMATS {
        let whole = picture(200, 160, format);
        for keep in [whole.len() / 2, whole.len() * 9 / 10, whole.len() - 2] {
            assert_eq!(
                process(&whole[..keep], &rules(4000)).map(|p| p.kind),
                Err(ImageError::Corrupt),
                "{format:?} cut to {keep} of {} bytes",
                whole.len()
            );
        }
    }
    // Whole chunks, but the PNG stops before IEND.
    let png = png_claiming(16, 16, 16);
    assert!(process(&png, &rules(100)).is_ok());
    assert_eq!(
        process(&png[..png.len() - 12], &rules(100)).map(|p| p.kind),
        Err(ImageError::Corrupt)
    );
}

#[test]
fn oversized_images_are_refused_before_decoding() {
    let big = picture(300, 20, ImageFormat::Png);
    assert_eq!(
        process(&big, &rules(200)).map(|p| p.kind),
        Err(ImageError::TooManyPixels(200))
    );
}

#[test]
fn images_needing_more_than_the_memory_budget_are_refused_from_the_header() {
    // 20000² RGBA claims 1.6 GB; the file holds a single row, so decoding
    // would fail anyway, but the refusal comes first and says why.
    let bomb = png_claiming(20_000, 20_000, 1);
    assert!(bomb.len() < 1_000);
    let budget = Rules {
        max_side: 30_000,
        decode_memory: 128 << 20,
        max_stored_side: 2048,
    };
    assert_eq!(
        process(&bomb, &budget).map(|p| p.kind),
        Err(ImageError::TooMuchMemory {
            width: 20_000,
            height: 20_000
        })
    );
    // Just within the budget: decoded.
    let fits = png_claiming(1000, 1000, 1000);
    let tight = Rules {
        decode_memory: 4_000_000,
        ..budget.clone()
    };
    assert!(process(&fits, &tight).is_ok());
    let tighter = Rules {
        decode_memory: 3_999_999,
        ..budget
    };
    assert!(matches!(
        process(&fits, &tighter),
        Err(ImageError::TooMuchMemory { .. })
    ));
}

#[test]
fn progressive_jpegs_count_their_coefficients() {
    let frame = |sampling: Vec<(u64, u64)>| JpegFrame {
        progressive: true,
        width: 12_000,
        height: 12_000,
        sampling,
        complete: true,
    };
    // 4:4:4: three full planes of i16.
    assert_eq!(
        frame(vec![(1, 1); 3]).coefficient_bytes(),
        3 * 12_000 * 12_000 * 2
    );
    // 4:2:0: a full luma plane and two quarter chroma planes.
    assert_eq!(
        frame(vec![(2, 2), (1, 1), (1, 1)]).coefficient_bytes(),
        (12_000 * 12_000 + 2 * 6_000 * 6_000) * 2
    );
    let baseline = picture(64, 48, ImageFormat::Jpeg);
    let parsed = jpeg_frame(&baseline).expect("frame");
    assert!(!parsed.progressive && parsed.complete);
    assert_eq!((parsed.width, parsed.height), (64, 48));
}
