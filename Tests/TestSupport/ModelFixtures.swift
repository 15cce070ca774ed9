import Foundation
import XCTest

/// The pretrained checkpoint folder the tests use: the one scripts/fetch-model.sh fills
/// ($PTUNE_MODEL, or the cache). Fails the test with the fix when it is missing.
public func pretrainedModelFolder(file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let environment = ProcessInfo.processInfo.environment
    let folder = environment["PTUNE_MODEL"].flatMap { $0.isEmpty ? nil : $0 }
        ?? ((environment["PTUNE_CACHE"].flatMap { $0.isEmpty ? nil : $0 }
             ?? NSHomeDirectory() + "/.cache/ptune") + "/models/all-MiniLM-L6-v2")
    guard FileManager.default.fileExists(atPath: folder + "/model.safetensors") else {
        XCTFail("no checkpoint at \(folder): run scripts/fetch-model.sh (the README's test command does)", file: file, line: line)
        throw XCTSkip("model missing")
    }
    return folder
}

/// A fresh temporary folder, removed when the test ends.
public func temporaryFolder(_ test: XCTestCase) throws -> String {
    let path = NSTemporaryDirectory() + "ptune-test-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

/// A temporary folder holding `mood.json`, a tiny two-label task whose three splits are one
/// 24-line file, `data.jsonl`.
public func moodTask(_ test: XCTestCase) throws -> String {
    let folder = try temporaryFolder(test)
    let lines = try (0..<24).map { i in
        let example = ["text": i % 2 == 0 ? "a fine day \(i)" : "a grim day \(i)", "label": i % 2 == 0 ? "up" : "down"]
        return String(decoding: try JSONSerialization.data(withJSONObject: example), as: UTF8.self)
    }
    try (lines.joined(separator: "\n") + "\n").write(toFile: folder + "/data.jsonl", atomically: true, encoding: .utf8)
    try #"{"name": "mood", "kind": "classification", "labels": ["down", "up"], "train": "data.jsonl", "dev": "data.jsonl", "test": "data.jsonl"}"#
        .write(toFile: folder + "/mood.json", atomically: true, encoding: .utf8)
    return folder
}
