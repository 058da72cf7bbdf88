// The process heap's free memory, and giving it back to the kernel (issue 12: RSS should return near its baseline
// after an attack's streams are gone). glibc keeps freed memory inside its arenas; only `malloc_trim` returns the free
// pages in the middle of them, so a burst that freed everything still shows in RSS until someone asks.
internal import CShims

/// The allocator's free memory (glibc).
public enum MinervaHeap {
    /// Bytes the program has allocated and not yet freed (all arenas and mmapped blocks), and bytes freed but still
    /// held by the allocator, from one walk of the arenas. Tells growth in live data from fragmentation
    /// when RSS grows. The walk takes milliseconds on a fragmented heap: call it from a slow timer, not per request.
    public static var usage: (inUse: Int, free: Int) {
        var inUse = 0
        var free = 0
        cshims_heap_usage(&inUse, &free)
        return (inUse, free)
    }

    /// Returns the allocator's free pages to the kernel. Takes time proportional to the free memory (about 1 ms
    /// per 100 MB measured here); call it from a timer, not per request.
    /// - Returns: whether any memory was released.
    @discardableResult
    public static func trim() -> Bool { cshims_heap_trim() != 0 }
}
