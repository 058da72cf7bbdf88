// The connection limit follows the machine: the open-files limit minus a documented reserve.
import Glibc
import Testing

@testable import MinervaHTTP

@Suite struct HTTPLimitDefaultsTests {
    @Test func theReserveIsFivePercentBetween64And1000() {
        #expect(MinervaHTTPServerConfiguration.descriptorReserve(forLimit: 20_000) == 1_000)
        #expect(MinervaHTTPServerConfiguration.descriptorReserve(forLimit: 1_024) == 64)
        #expect(MinervaHTTPServerConfiguration.descriptorReserve(forLimit: 4_000) == 200)
        #expect(MinervaHTTPServerConfiguration.descriptorReserve(forLimit: 1_000_000) == 1_000)
    }

    @Test func maxConnectionsDefaultsToTheOpenFilesLimitMinusTheReserve() {
        var limit = rlimit()
        #expect(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0)
        let files = Int(limit.rlim_cur)
        #expect(MinervaHTTPServerConfiguration.openFilesLimit() == files)
        let expected = files - MinervaHTTPServerConfiguration.descriptorReserve(forLimit: files)
        #expect(MinervaHTTPServerConfiguration().maxConnections == expected)
        if files == 20_000 { #expect(MinervaHTTPServerConfiguration().maxConnections == 19_000) }
    }
}
