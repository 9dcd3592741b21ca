//! Property tests on both frame decoders: any bytes, cut into any chunks, never panic and
//! never yield a frame whose checksum is wrong; and chunking never changes what is decoded.
//! A lock board's query reply of any width decodes whatever width the decoder expects.

use cabinet_board::lockboard::codec::{self as lock, LockDecoded, LockDecoder, Side};
use cabinet_board::vmc::codec::{self as vmc, Decoded, Decoder, SlotOrder, VmcFrame};
use proptest::prelude::*;

/// Decode chunk by chunk, then let the line go idle until the buffer is empty.
fn vmc_decode(chunks: &[Vec<u8>], order: SlotOrder) -> Vec<Decoded> {
    let mut d = Decoder::new(order);
    let mut out = vec![];
    for c in chunks {
        d.push(c);
        while let Some(ev) = d.next_event() {
            out.push(ev);
        }
    }
    while d.on_idle() {
        while let Some(ev) = d.next_event() {
            out.push(ev);
        }
    }
    out
}

fn lock_decode(chunks: &[Vec<u8>], side: Side, n: usize) -> Vec<LockDecoded> {
    let mut d = LockDecoder::new(side, n);
    let mut out = vec![];
    for c in chunks {
        d.push(c);
        while let Some(ev) = d.next_event() {
            out.push(ev);
        }
    }
    while d.on_idle() {
        while let Some(ev) = d.next_event() {
            out.push(ev);
        }
    }
    out
}

/// Bytes biased towards the protocols' magic values so frames actually occur.
fn noisy_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            any::<u8>(),
            Just(0xFA),
            Just(0xFB),
            Just(0x8A),
            Just(0x80),
            Just(0x33),
            Just(0x00),
            Just(0x04)
        ],
        0..300,
    )
}

fn chunked(bytes: Vec<u8>, cuts: Vec<usize>) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut out = vec![];
    let mut last = 0;
    for p in points {
        out.push(bytes[last..p].to_vec());
        last = p;
    }
    out.push(bytes[last..].to_vec());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn vmc_decoder_never_panics_and_only_yields_good_checksums(
        bytes in noisy_bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        little in any::<bool>(),
    ) {
        let order = if little { SlotOrder::LittleEndian } else { SlotOrder::BigEndian };
        let whole = vmc_decode(std::slice::from_ref(&bytes), order);
        let pieces = vmc_decode(&chunked(bytes, cuts), order);
        prop_assert_eq!(&whole, &pieces);
        for ev in whole {
            if let Decoded::Frame(frame, raw) = ev {
                prop_assert_eq!(vmc::xor(&raw[..raw.len() - 1]), raw[raw.len() - 1]);
                // What we decoded re-encodes to exactly the bytes we got.
                prop_assert_eq!(vmc::encode(&frame, order), raw);
            }
        }
    }

    #[test]
    fn vmc_frames_survive_noise_without_sync_pairs(
        pre in noisy_bytes(),
        slot in any::<u16>(),
        packno in 1u8..=255,
    ) {
        // Noise with a sync pair in it can, by a 1-in-256 checksum coincidence, form a valid
        // frame that swallows the start of ours (the board then resends); without sync
        // pairs, ours must always come through.
        let mut bytes = pre;
        for i in 1..bytes.len() {
            if bytes[i - 1] == 0xFA && bytes[i] == 0xFB {
                bytes[i] = 0x00;
            }
        }
        let frame = VmcFrame::Dispense { packno, drop_sensor: true, elevator: false, slot };
        bytes.extend(vmc::encode(&frame, SlotOrder::BigEndian));
        let events = vmc_decode(&[bytes], SlotOrder::BigEndian);
        let last_frame = events.iter().rev().find_map(|e| match e {
            Decoded::Frame(f, _) => Some(f.clone()),
            Decoded::Error(..) => None,
        });
        prop_assert_eq!(last_frame, Some(frame));
    }

    #[test]
    fn lock_decoders_never_panic_and_only_yield_good_checksums(
        bytes in noisy_bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        status_bytes in 1usize..32,
        from_host in any::<bool>(),
    ) {
        let side = if from_host { Side::FromHost } else { Side::FromBoard };
        let whole = lock_decode(std::slice::from_ref(&bytes), side, status_bytes);
        let pieces = lock_decode(&chunked(bytes, cuts), side, status_bytes);
        prop_assert_eq!(&whole, &pieces);
        for ev in whole {
            if let LockDecoded::Frame(frame, raw) = ev {
                prop_assert_eq!(lock::bcc(&raw[..raw.len() - 1]), raw[raw.len() - 1]);
                prop_assert_eq!(lock::encode(&frame), raw);
            }
        }
    }

    #[test]
    fn lock_query_replies_of_any_width_decode_whatever_width_is_expected(
        pre in noisy_bytes(),
        board in any::<u8>(),
        status in prop::collection::vec(any::<u8>(), 1..=lock::MAX_STATUS_BYTES),
        expected in 1usize..=lock::MAX_STATUS_BYTES,
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        // Noise without frame headers is skipped whole. Status bytes equal to 33 can make a
        // shorter or longer reading check out too (the frame has no length byte, so that
        // ambiguity is the protocol's); without them the board's own width must win.
        let mut bytes: Vec<u8> = pre
            .into_iter()
            .map(|b| if b == lock::QUERY || b == lock::UNLOCK { 0 } else { b })
            .collect();
        let status: Vec<u8> = status
            .into_iter()
            .map(|b| if b == lock::QUERY_CMD { 0 } else { b })
            .collect();
        let frame = lock::LockFrame::QueryReply { board, status };
        let raw = lock::encode(&frame);
        bytes.extend_from_slice(&raw);
        let events = lock_decode(&chunked(bytes, cuts), Side::FromBoard, expected);
        prop_assert_eq!(events, vec![LockDecoded::Frame(frame, raw)]);
    }
}
