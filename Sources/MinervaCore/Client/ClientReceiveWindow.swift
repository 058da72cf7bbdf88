// The client's receive window (PROTOCOL.md 6.6 and 7.8): the same algorithm as the server's, with the original
// client's size estimate (21 + 2 x length: UTF-16 code units, and restricted strings are ASCII) and the
// recommendation of 6.6 (a string whose number is already cached is a duplicate).

/// The client's window of S2C strings: in-order delivery from numbered strings, within a bounded cache.
struct ClientReceiveWindow {
    /// The most strings cached above a gap.
    let maxUndeliveredStrings: Int
    /// The most estimated bytes cached above a gap.
    let maxUndeliveredBytes: Int
    /// The highest N such that every string 0...N was delivered; -1 initially.
    private(set) var lastAck: Int64 = -1
    /// Strings above a gap, ascending by sequence number.
    private var cached: [(seq: Int64, bytes: [UInt8])] = []
    /// The estimated size of `cached`.
    private(set) var cachedEstimate = 0

    init(maxUndeliveredStrings: Int, maxUndeliveredBytes: Int) {
        self.maxUndeliveredStrings = maxUndeliveredStrings
        self.maxUndeliveredBytes = maxUndeliveredBytes
    }

    /// The number of strings cached above a gap.
    var cachedCount: Int { cached.count }

    /// The window's SACK.
    var sack: SACK { SACK(ackNumber: lastAck, sackList: cached.map(\.seq)) }

    static func estimate(_ bytes: [UInt8]) -> Int { 21 + 2 * bytes.count }

    /// Processes numbered strings (sorted by the caller) and returns the deliverable ones in order, and whether
    /// a limit was hit (the rest of the batch was not processed).
    mutating func receive(_ batch: [(Int64, [UInt8])]) -> (deliverable: [[UInt8]], limitHit: Bool) {
        var out: [[UInt8]] = []
        for (seq, bytes) in batch {
            if seq == lastAck + 1 {
                lastAck = seq
                out.append(bytes)
                var released = 0
                while released < cached.count, cached[released].seq == lastAck + 1 {
                    lastAck += 1
                    cachedEstimate -= Self.estimate(cached[released].bytes)
                    out.append(cached[released].bytes)
                    released += 1
                }
                if released > 0 { cached.removeFirst(released) }
            } else if seq > lastAck {
                var low = 0
                var high = cached.count
                while low < high {
                    let mid = (low + high) / 2
                    if cached[mid].seq < seq { low = mid + 1 } else { high = mid }
                }
                if low < cached.count, cached[low].seq == seq { continue }
                let size = Self.estimate(bytes)
                if cached.count >= maxUndeliveredStrings || cachedEstimate + size > maxUndeliveredBytes {
                    return (out, true)
                }
                cached.insert((seq, bytes), at: low)
                cachedEstimate += size
            }
        }
        return (out, false)
    }
}
