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
