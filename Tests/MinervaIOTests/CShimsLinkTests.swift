import CShims
import Testing

@testable import MinervaIO

@Test func libevAndHttpParserLink() {
    let loop = cshims_ev_loop_new_nosigmask()
    #expect(loop != nil)
    ev_loop_destroy(loop)
    #expect(http_parser_version() >= 0x020900)
}
