// The process heap's free memory, and giving it back to the kernel (issue 12: RSS should return near its baseline
// after an attack's streams are gone). glibc keeps freed memory inside its arenas; only `malloc_trim` returns the free
// pages in the middle of them, so a burst that freed everything still shows in RSS until someone asks.
internal import CShims

/// The allocator's free memory (glibc).
public enum MinervaHeap {
    /// Bytes freed by the program that the allocator still holds (all arenas).
    public static var freeBytes: Int { Int(cshims_heap_free_bytes()) }

    /// Bytes the program has allocated and not yet freed (all arenas and mmapped blocks). With `freeBytes`, tells
    /// growth in live data from fragmentation when RSS grows. Walks the arenas: call it from a timer, not per request.
    public static var inUseBytes: Int { Int(cshims_heap_in_use_bytes()) }

    /// Returns the allocator's free pages to the kernel. Takes time proportional to the free memory (about 1 ms
    /// per 100 MB measured here); call it from a timer, not per request.
    /// - Returns: whether any memory was released.
    @discardableResult
    public static func trim() -> Bool { cshims_heap_trim() != 0 }
}
