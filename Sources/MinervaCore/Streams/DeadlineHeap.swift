// A binary min-heap of deadlines: one timer for all transports, and the queue of streams that may go idle (the engine
// reports only the earliest deadline of each).

struct DeadlineHeap<Payload> {
    struct Entry {
        var deadline: Double
        var payload: Payload
    }

    private var items: [Entry] = []

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    var first: Entry? { items.first }

    mutating func push(_ entry: Entry) {
        items.append(entry)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].deadline < items[parent].deadline else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func push(_ payload: Payload, at deadline: Double) {
        push(Entry(deadline: deadline, payload: payload))
    }

    /// Drops the entries `shouldRemove` picks and restores the heap order (Floyd's bottom-up build): O(count).
    mutating func removeAll(where shouldRemove: (Entry) -> Bool) {
        items.removeAll(where: shouldRemove)
        var parent = items.count / 2 - 1
        while parent >= 0 {
            siftDown(from: parent)
            parent -= 1
        }
    }

    mutating func pop() -> Entry? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        siftDown(from: 0)
        return top
    }

    private mutating func siftDown(from index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count, items[left].deadline < items[smallest].deadline { smallest = left }
            if right < items.count, items[right].deadline < items[smallest].deadline { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

/// What a transport's deadline is for.
struct TransportTimer {
    enum Kind: UInt8 {
        case heartbeat, maxOpenTime, socketClose
    }

    var handle: TransportHandle
    var kind: Kind
}
