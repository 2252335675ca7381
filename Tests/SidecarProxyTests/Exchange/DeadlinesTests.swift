import Testing
@testable import SidecarProxy

struct DeadlinesTests {
    @Test func grpcTimeoutsParseAsGRPCWritesThem() {
        #expect(Deadlines.grpcTimeoutMillis("100m") == 100)
        #expect(Deadlines.grpcTimeoutMillis("1S") == 1_000)
        #expect(Deadlines.grpcTimeoutMillis("2M") == 120_000)
        #expect(Deadlines.grpcTimeoutMillis("1H") == 3_600_000)
        #expect(Deadlines.grpcTimeoutMillis("1500u") == 2, "rounded up")
        #expect(Deadlines.grpcTimeoutMillis("5n") == 1, "a deadline however short")
        #expect(Deadlines.grpcTimeoutMillis("99999999H") == 359_999_996_400_000)
        for bad in ["", "m", "10", "123456789m", "1x", "-1m", "1.5S", " 1S", "１S"] {
            #expect(Deadlines.grpcTimeoutMillis(bad) == nil, "\(bad)")
        }
    }

    @Test func deadlinesComeFromTheConfigurationAndTheCaller() {
        var config = SidecarConfiguration()
        config.requestTimeoutMillis = 15_000
        config.perTryTimeoutMillis = 0
        let plain = Deadlines(config)
        #expect(plain.millis(.request) == 15_000 && plain.millis(.perTry) == nil && plain.millis(.grpc) == nil)
        config.requestTimeoutMillis = 0
        config.perTryTimeoutMillis = 250
        let grpc = Deadlines(config, grpcTimeout: "100m")
        #expect(grpc.millis(.request) == nil && grpc.millis(.perTry) == 250 && grpc.millis(.grpc) == 100)
        #expect(Deadlines(config, grpcTimeout: "soon").millis(.grpc) == nil, "a malformed grpc-timeout is no deadline")
        #expect(grpc.reason(.perTry) == "upstream per-try timeout after 250 ms")
        #expect(grpc.reason(.grpc) == "grpc-timeout of 100 ms reached")
        #expect(Deadlines(requestMillis: 5, perTryMillis: 0).reason(.request) == "upstream request timeout after 5 ms")
    }
}
