import MinervaCore
import Testing

@Test func streamIDRoundTripsAndValidates() {
    let id = StreamID(String(repeating: "x", count: 26))
    #expect(id?.bytes == Array(repeating: UInt8(ascii: "x"), count: 26))
    #expect(id?.count == 26)
    #expect(StreamID(String(repeating: "x", count: 19)) == nil)
    #expect(StreamID(String(repeating: "x", count: 31)) == nil)
    #expect(StreamID(bytes: [UInt8](repeating: 0x80, count: 25)) == nil)
    #expect(StreamID(bytes: [UInt8](repeating: 0, count: 26)) != nil)
    #expect(StreamID(String(repeating: "a", count: 30)) != StreamID(String(repeating: "a", count: 29) + "b"))
    #expect(id?.redacted == "xxxx…(26)")
}
