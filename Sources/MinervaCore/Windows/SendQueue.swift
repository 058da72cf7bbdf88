// The server's (and client's) queue of sent-but-unacknowledged strings (PROTOCOL.md 6.4, 6.5).
//
// Sequence numbers are assigned consecutively, so the queue is a deque indexed by `seq - baseSeq`: an entry
// is nil once a SACK listed it out of order. Every operation is O(1) per string touched; nothing is sorted.

/// A queue of outgoing strings numbered from 0, with selective-acknowledgement processing.
public struct SendQueue: Sendable {
    private var slots: [[UInt8]?] = []
    // Index in `slots` of the entry with sequence number `baseSeq`.
    private var head = 0
    // Sequence number of slots[head] (the lowest number that may still be queued).
    private var baseSeq: Int64 = 0

    /// The sequence number the next appended string gets.
    public private(set) var nextSequenceNumber: Int64 = 0
    /// The number of strings still queued (not acknowledged).
    public private(set) var count = 0
    /// The total bytes of the strings still queued (memory accounting).
    public private(set) var queuedBytes = 0

    /// What one queued string costs in memory beside its bytes: its array's header and allocator rounding, and its
    /// slot here (measured: 260,000 two-byte strings held about 23 MB).
    public static let costPerString = 80

    /// The memory the queued strings hold: their bytes plus ``costPerString`` each. Limits count this, so that many
    /// tiny strings cannot hold far more memory than their payload suggests.
    public var queuedMemory: Int { queuedBytes + count * SendQueue.costPerString }

    /// Creates an empty queue whose first string will be number 0.
    public init() {}

    /// Whether no string is queued.
    public var isEmpty: Bool { count == 0 }

    /// The highest sequence number ever assigned, or -1 if none was.
    public var highestAssigned: Int64 { nextSequenceNumber - 1 }

    /// The lowest queued sequence number, if any.
    public var firstSequenceNumber: Int64? { isEmpty ? nil : baseSeq }

    /// The highest queued sequence number, if any.
    public var lastSequenceNumber: Int64? { isEmpty ? nil : nextSequenceNumber - 1 }

    /// Appends a string and returns the sequence number it was given.
    /// - Parameter string: the string's bytes (validated by the caller).
    /// - Returns: its sequence number.
    @discardableResult
    public mutating func append(_ string: [UInt8]) -> Int64 {
        let seq = nextSequenceNumber
        if count == 0 {
            // Nothing queued: restart the storage at this number.
            slots.removeAllKeepingSmallCapacity()
            head = 0
            baseSeq = seq
        }
        slots.append(string)
        nextSequenceNumber += 1
        count += 1
        queuedBytes += string.count
        return seq
    }

    /// Removes every string acknowledged by `sack` (numbers <= ackNumber and those listed).
    ///
    /// Strings are removed even when the SACK turns out to be bad.
    /// - Parameter sack: the client's selective acknowledgement.
    /// - Returns: false if the SACK acknowledges a number above ``highestAssigned`` (a bad SACK).
    public mutating func process(_ sack: SACK) -> Bool {
        var good = sack.ackNumber <= highestAssigned
        // Drop everything up to the ack number.
        let ackLimit = min(sack.ackNumber, highestAssigned)
        while baseSeq <= ackLimit, head < slots.count {
            dropHead()
        }
        if count == 0 {
            // Keep baseSeq consistent even when the ack skipped over removed (nil) slots.
            baseSeq = nextSequenceNumber
            slots.removeAllKeepingSmallCapacity()
            head = 0
        }
        for seq in sack.sackList {
            if seq > highestAssigned {
                good = false
                continue
            }
            guard seq >= baseSeq else { continue }
            let index = head + Int(seq - baseSeq)
            if index < slots.count, let bytes = slots[index] {
                slots[index] = nil
                count -= 1
                queuedBytes -= bytes.count
            }
        }
        // Skip leading holes so `firstSequenceNumber` is a queued string.
        while head < slots.count, slots[head] == nil {
            head += 1
            baseSeq += 1
        }
        compactIfNeeded()
        return good
    }

    private mutating func dropHead() {
        if let bytes = slots[head] {
            count -= 1
            queuedBytes -= bytes.count
            slots[head] = nil
        }
        head += 1
        baseSeq += 1
    }

    private mutating func compactIfNeeded() {
        if head == slots.count {
            slots.removeAllKeepingSmallCapacity()
            head = 0
        } else if head > 64, head * 2 > slots.count {
            slots.removeFirst(head)
            head = 0
        }
    }

    /// Removes every queued string (for resets).
    public mutating func removeAll() {
        slots.removeAll()
        head = 0
        baseSeq = nextSequenceNumber
        count = 0
        queuedBytes = 0
    }

    /// Calls `body` for every queued string with a sequence number >= `from`, ascending.
    /// - Parameters:
    ///   - from: the lowest sequence number wanted.
    ///   - body: receives each sequence number and the string's bytes.
    public func forEach(from: Int64, _ body: (Int64, [UInt8]) throws -> Void) rethrows {
        guard count > 0 else { return }
        var seq = max(from, baseSeq)
        guard seq < nextSequenceNumber else { return }
        var index = head + Int(seq - baseSeq)
        while index < slots.count {
            if let bytes = slots[index] {
                try body(seq, bytes)
            }
            index += 1
            seq += 1
        }
    }

    /// The queued sequence numbers, ascending (for tests and diagnostics; allocates).
    public var sequenceNumbers: [Int64] {
        var result: [Int64] = []
        forEach(from: 0) { seq, _ in result.append(seq) }
        return result
    }
}
