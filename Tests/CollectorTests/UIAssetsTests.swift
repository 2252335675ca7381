import Foundation
import Testing

@testable import Collector

/// The UI is authored under Sources/Collector/UI/Assets and compiled into EmbeddedAssets.swift
/// by scripts/embed-ui. These tests fail when someone edits an asset and forgets to regenerate.
@Suite struct UIAssetsTests {
    static let assetsDirectory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/Collector/UI/Assets")

    static func fnv1a64(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    @Test func embeddedAssetsMatchTheFilesOnDisk() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.assetsDirectory.path)
            .filter { !$0.hasPrefix(".") }.sorted()
        #expect(!names.isEmpty)
        let stale = "Sources/Collector/UI/EmbeddedAssets.swift is stale: run scripts/embed-ui"
        #expect(Set(names) == Set(EmbeddedAssets.files.keys), "\(stale)")
        var combined: UInt64 = 0xcbf2_9ce4_8422_2325
        for name in names {
            let data = try Data(contentsOf: Self.assetsDirectory.appendingPathComponent(name))
            let asset = try #require(EmbeddedAssets.files[name], "\(stale) (\(name) missing)")
            let same = asset.bytes.readableBytesView.elementsEqual(data)
            #expect(same, "\(stale) (\(name) differs)")
            let digest = Self.fnv1a64(data)
            #expect(asset.etag == "\"\(Self.hex(digest))\"", "\(stale) (\(name) etag)")
            var chunk = withUnsafeBytes(of: combined.littleEndian, Array.init)
            chunk += Array(name.utf8) + [0] + withUnsafeBytes(of: digest.littleEndian, Array.init)
            combined = Self.fnv1a64(chunk)
        }
        #expect(EmbeddedAssets.combinedHash == Self.hex(combined), "\(stale)")
    }

    @Test func everyAssetHasAContentTypeAndIndexLoadsTheApp() throws {
        for (name, asset) in EmbeddedAssets.files {
            if name.hasSuffix(".js") { #expect(asset.contentType.hasPrefix("text/javascript")) }
            if name.hasSuffix(".css") { #expect(asset.contentType.hasPrefix("text/css")) }
            if name.hasSuffix(".html") { #expect(asset.contentType.hasPrefix("text/html")) }
        }
        let index = try #require(EmbeddedAssets.files["index.html"])
        let html = String(buffer: index.bytes)
        #expect(html.contains("/static/app.js"))
        #expect(html.contains("/static/style.css"))
    }

    /// Data must never reach the DOM as markup: the UI builds every node with textContent,
    /// createTextNode or setAttribute.
    @Test func scriptsNeverInjectMarkup() {
        for (name, asset) in EmbeddedAssets.files where name.hasSuffix(".js") {
            let js = String(buffer: asset.bytes)
            for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
                #expect(!js.contains(sink), "\(name) uses \(sink)")
            }
        }
    }
}
