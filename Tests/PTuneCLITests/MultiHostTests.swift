import Foundation
import Model
import TestSupport
import XCTest

/// Two hosts on one machine: two network namespaces joined by a veth pair, one rank in each,
/// Open MPI's TCP transport between them and an rsh agent that enters the other namespace (each
/// with its own host name). The file system is shared, as a cluster's would be.
final class MultiHostTests: XCTestCase {
    private var namespaces: [String] = []
    private var addresses: [String] = []
    private var folder = ""

    private func ip(_ arguments: [String]) throws {
        let result = try runProcess("/usr/sbin/ip", arguments)
        guard result.status == 0 else {
            throw XCTSkip("ip \(arguments.joined(separator: " ")) failed (\(result.standardError)); the multi-host test needs root")
        }
    }

    override func setUpWithError() throws {
        guard getuid() == 0 else { throw XCTSkip("network namespaces need root") }
        folder = try temporaryFolder(self)
        let tag = "\(getpid() % 100_000)", subnet = "10.231.\(getpid() % 250)"
        namespaces = ["ptune-a\(tag)", "ptune-b\(tag)"]
        addresses = ["\(subnet).1", "\(subnet).2"]
        let links = ["pta\(tag)", "ptb\(tag)"]
        for namespace in namespaces { try ip(["netns", "add", namespace]) }
        addTeardownBlock { [namespaces] in
            for namespace in namespaces { _ = try? runProcess("/usr/sbin/ip", ["netns", "delete", namespace]) }
        }
        try ip(["link", "add", links[0], "type", "veth", "peer", "name", links[1]])
        for (index, namespace) in namespaces.enumerated() {
            try ip(["link", "set", links[index], "netns", namespace])
            try ip(["-n", namespace, "addr", "add", addresses[index] + "/24", "dev", links[index]])
            try ip(["-n", namespace, "link", "set", links[index], "up"])
            try ip(["-n", namespace, "link", "set", "lo", "up"])
        }
        // What ssh would be: run the command line in the host's namespace, under its own host name.
        let cases = zip(addresses, namespaces).map { "    \($0)) ns=\($1);;" }.joined(separator: "\n")
        try """
            #!/bin/sh
            host="$1"; shift
            case "$host" in
            \(cases)
                *) echo "no such host: $host" >&2; exit 1;;
            esac
            exec /usr/sbin/ip netns exec "$ns" unshare --uts sh -c "hostname host-$ns; $*"

            """.write(toFile: folder + "/netns-rsh", atomically: true, encoding: .utf8)
        chmod(folder + "/netns-rsh", 0o755)
        try addresses.map { "\($0) slots=1\n" }.joined().write(toFile: folder + "/hostfile", atomically: true, encoding: .utf8)
    }

    /// `mpirun` started inside the first namespace, one rank on each host, over TCP only.
    private func mpirunArguments(_ ptune: [String]) throws -> [String] {
        let subnet = addresses[0].split(separator: ".").dropLast().joined(separator: ".") + ".0/24"
        return ["netns", "exec", namespaces[0], "unshare", "--uts", "sh", "-c",
                "hostname host-\(namespaces[0]); exec \"$@\"", "mpirun",
                "mpirun", "--hostfile", folder + "/hostfile", "-np", "2", "--bind-to", "none",
                "--mca", "plm_rsh_agent", folder + "/netns-rsh", "--mca", "btl", "tcp,self",
                "--mca", "btl_tcp_if_include", subnet, "--mca", "oob_tcp_if_include", subnet,
                "-x", "PTUNE_THREADS=1",
                try ptunePath()] + ptune
    }

    private let environment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]

    private func losses(_ run: String) throws -> [Double] {
        try TextFile.lines(atPath: run + "/metrics.jsonl").compactMap {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double
        }
    }

    func testTwoHostsTrainAsOneProcessAndResumeAfterTheRemoteRankDies() throws {
        let task = try moodTask(self) + "/mood.json", model = try pretrainedModelFolder()
        let common = ["train", "--model", model, "--task", task, "--method", "lora", "--lora-r", "4", "--max-steps", "6",
                      "--batch-size", "8", "--eval-every", "3", "--log-every", "1", "--precision", "fp32"]
        let single = try runProduct("ptune", common + ["--out", folder + "/one"])
        XCTAssertEqual(single.status, 0, single.standardError)
        let hosts = try runProcess("/usr/sbin/ip", try mpirunArguments(common + ["--out", folder + "/two"]),
                                   environment: environment)
        XCTAssertEqual(hosts.status, 0, hosts.standardError)
        let (a, b) = (try losses(folder + "/one"), try losses(folder + "/two"))
        XCTAssertEqual(a.count, 6)
        XCTAssertEqual(a.count, b.count)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5 * abs(x), "losses over TCP between hosts") }

        // kill -9 of the rank on the second host: the job ends, and --resume on both hosts finishes it.
        let out = folder + "/killed"
        let job = try startProcess("/usr/sbin/ip", try mpirunArguments([
            "train", "--model", model, "--task", task, "--method", "lora", "--max-steps", "30", "--batch-size", "8",
            "--eval-every", "100", "--checkpoint-every", "2", "--log-every", "1", "--out", out,
        ]), environment: environment, errorPath: folder + "/killed.err")
        waitWhileRunning(job) { FileManager.default.fileExists(atPath: out + "/checkpoint.safetensors") }
        let remote = try runProcess("/usr/sbin/ip", ["netns", "pids", namespaces[1]]).standardOutput
            .split(separator: "\n").compactMap { Int32($0) }
            .filter { (try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8))?.hasPrefix("ptune") == true }
        XCTAssertEqual(remote.count, 1, "one ptune rank runs on the second host")
        for pid in remote { kill(pid, SIGKILL) }
        job.waitUntilExit()
        XCTAssertNotEqual(job.terminationStatus, 0, "a dead rank ends the job")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/summary.json"))
        let resumed = try runProcess("/usr/sbin/ip", try mpirunArguments(["train", "--resume", out]), environment: environment)
        XCTAssertEqual(resumed.status, 0, resumed.standardError)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
        XCTAssertEqual((summary as? [String: Any])?["steps"] as? Int, 30)
    }

    func testThePipelineOnTwoHostsWritesTheRegistryOnTheCoordinator() throws {
        let data = try moodTask(self), model = try pretrainedModelFolder()
        // A second task on the same data, under its own name.
        let second = try String(contentsOfFile: data + "/mood.json", encoding: .utf8)
            .replacingOccurrences(of: "\"name\": \"mood\"", with: "\"name\": \"mood2\"")
        try second.write(toFile: data + "/mood2.json", atomically: true, encoding: .utf8)
        let result = try runProcess("/usr/sbin/ip", try mpirunArguments([
            "run", "--model", model, "--tasks", "\(data)/mood.json,\(data)/mood2.json", "--groups", "2",
            "--out", folder + "/pipeline", "--pretrain-steps", "4", "--pretrain-batch-size", "8", "--prompt-length", "4",
            "--max-steps", "3", "--batch-size", "8", "--eval-every", "3",
        ]), environment: environment)
        XCTAssertEqual(result.status, 0, result.standardError)
        let manifest = try XCTUnwrap(JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: folder + "/pipeline/registry/manifest.json"))) as? [String: Any])
        let adapters = try XCTUnwrap(manifest["adapters"] as? [[String: Any]])
        XCTAssertEqual(adapters.compactMap { $0["task"] as? String }.sorted(), ["mood", "mood2"])
        XCTAssertEqual(Set(adapters.compactMap { $0["group"] as? Int }), [0, 1], "each host's group trained a task")
        XCTAssertEqual(Set(adapters.compactMap { $0["ranks"] as? Int }), [1])
    }
}
