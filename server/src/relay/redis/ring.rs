//! Which shard a room lives on: a jump consistent hash (Lamping & Veach, 2014) of a 64-bit
//! FNV-1a hash of its name.
//!
//! Written here because both are a few lines with published reference values, and the mapping
//! must never change with a dependency's version: every node, of every release, must put a
//! room on the same shard. Adding a shard at the end of the list moves about 1/(n+1) of the
//! rooms, all of them onto the new shard; removing or reordering shards moves many more.

/// 64-bit FNV-1a of `bytes`.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

/// Jump consistent hash: a bucket in `0..buckets` for `key`.
fn jump(mut key: u64, buckets: usize) -> usize {
    let buckets = i64::try_from(buckets.max(1)).unwrap_or(i64::MAX);
    let (mut chosen, mut next) = (-1_i64, 0_i64);
    while next < buckets {
        chosen = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        let scale = ((1_u64 << 31) as f64) / (((key >> 33) + 1) as f64);
        next = ((chosen + 1) as f64 * scale) as i64;
    }
    usize::try_from(chosen).unwrap_or(0)
}

/// The shard of `room` among `shards`.
pub(crate) fn shard_of(room: &str, shards: usize) -> usize {
    jump(fnv1a(room.as_bytes()), shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_its_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn adding_a_shard_moves_only_rooms_onto_it_and_about_their_share() {
        let rooms: Vec<String> = (0..10_000).map(|i| format!("room-{i}")).collect();
        let moved = rooms
            .iter()
            .filter(|room| {
                let (before, after) = (shard_of(room, 3), shard_of(room, 4));
                assert!(
                    before == after || after == 3,
                    "{room} moved between old shards"
                );
                before != after
            })
            .count();
        // A quarter should move; allow for the sample.
        assert!((2_000..3_000).contains(&moved), "{moved} of 10000 moved");
        assert!(rooms.iter().all(|room| shard_of(room, 1) == 0));
    }
}
