import Foundation
import Testing

@testable import StackVaultCore

/// `stackvault helper tar-create | tar-extract` (DiskTarReader, DiskTarExtractor) on the real local file system:
/// the built binary is spawned with pipes, as the helper container runs it. Needs root (owners, device nodes,
/// `trusted.*` xattrs), a file system with user xattrs and POSIX ACLs, and `attr` + `acl` (setfattr, getfacl:
/// scripts/install-deps.sh). The commands change the process's working directory, which is why they are never
/// run inside the test process. One test at a time: they spawn busy processes, and timing tests of other suites
/// share the two cores.
@Suite("DiskTar", .serialized)
struct DiskTarTests {
    typealias Support = DiskTarTestSupport

    @Test func roundTripKeepsContentOwnersModesTimesXattrsACLsLinksAndSpecialFiles() async throws {
        let directory = try ArchiveTestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let src = directory.path("src")
        let dst = directory.path("dst")
        try await Support.bash("""
            set -e
            mkdir -p \(q(src))/sub/empty \(q(dst))/olddir
            cd \(q(src))
            printf 'hello\\n' > a.txt; chmod 640 a.txt; chown 1234:5678 a.txt
            setfattr -n user.color -v blue a.txt
            setfattr -n trusted.origin -v host a.txt
            setfattr -n user.binary -v 0x00ff10 sub
            head -c 100000 /dev/urandom > sub/random.bin; chmod 4755 sub/random.bin
            # the ACL mask is wider than the owning group's own bits: group must stay r--
            printf 'acl\\n' > acl.txt; chmod 640 acl.txt; setfacl -m u:1234:rwx acl.txt
            setfacl -m u:1234:rwx,g:5678:r-x sub; setfacl -d -m u:1234:r-x,g::r-x sub
            ln a.txt sub/hard; ln a.txt hard2
            mkfifo fifo; chmod 600 fifo
            mknod null c 1 3
            ln -s /etc/passwd abs-link; ln -s ../a.txt sub/rel-link; ln -s missing dangling
            python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' sock
            printf 'n' > "$(printf 'new\\nline')"; printf 'u' > 'ünï©ødé ✓'; printf 'b' > "$(printf 'bad\\377\\376')"
            touch -h -d '2001-02-03 04:05:06' abs-link; touch -d '2002-03-04 05:06:07' sub/empty a.txt
            chown 42:43 sub/empty; chmod 2711 sub/empty
            # the directory itself: owner, mode, times, xattr, access + default ACL
            chown 7:8 .; chmod 2750 .; setfattr -n user.top -v yes .; setfacl -m u:99:rx .; setfacl -d -m g:77:rwx .
            touch -d '2003-04-05 06:07:08' .
            # old content of the target, its own stale metadata
            cd \(q(dst)); echo old > oldfile; echo old > a.txt; setfattr -n user.stale -v 1 .; setfacl -m u:5:r .
            """)
        let before = try await Support.snapshot(src)

        let result = try await Support.bash(
            "\(q(Support.binary)) helper tar-create \(q(src)) 2>\(q(directory.path("create.err"))) "
                + "| \(q(Support.binary)) helper tar-extract \(q(dst)) 2>\(q(directory.path("extract.err"))); "
                + "echo \"${PIPESTATUS[@]}\"")
        #expect(result.output == "0 0\n")
        let created = try Support.summary(directory.path("create.err"))
        let extracted = try Support.summary(directory.path("extract.err"))
        #expect(created.skippedSockets == 1)
        #expect(created.skippedSocketPaths == ["sock"])
        #expect(created.hardlinks == 2)
        #expect(extracted.hardlinks == 2)
        #expect(created.aclEntries == 3)
        #expect(extracted.aclEntries == 3)
        #expect(created.xattrs >= 4)  // hard-link entries repeat their file's attributes
        #expect(extracted.xattrs == created.xattrs)
        #expect(created.entries == extracted.entries)
        #expect(created.dataBytes == extracted.dataBytes)
        #expect(created.warnings.isEmpty && extracted.warnings.isEmpty)
        #expect(extracted.oldContentRemoved == true)

        let after = try await Support.snapshot(dst)
        #expect(after == before)
        let checks = try await Support.bash("""
            cd \(q(dst))
            getfacl -p acl.txt | grep -E '^(group|mask)::'
            [ "$(stat -c %i a.txt)" = "$(stat -c %i sub/hard)" ] && [ "$(stat -c %i a.txt)" = "$(stat -c %i hard2)" ] \
              && echo same-inode
            ls -A | grep -c stackvault || true
            [ -e oldfile ] || echo old-gone
            readlink abs-link sub/rel-link
            """)
        #expect(checks.output == "group::r--\nmask::rwx\nsame-inode\n0\nold-gone\n/etc/passwd\n../a.txt\n")
    }

    @Test func sparseFileKeepsItsHolesInTheTarAndOnDisk() async throws {
        let directory = try ArchiveTestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let src = directory.path("src")
        let dst = directory.path("dst")
        let tar = directory.path("s.tar")
        try await Support.bash("""
            set -e
            mkdir -p \(q(src)) \(q(dst))
            truncate -s 4G \(q(src))/sparse
            head -c 8192 /dev/urandom | dd of=\(q(src))/sparse bs=4096 seek=262144 conv=notrunc status=none
            """)
        let result = try await Support.bash("""
            \(q(Support.binary)) helper tar-create \(q(src)) > \(q(tar)) 2>\(q(directory.path("c.err"))) || exit 1
            \(q(Support.binary)) helper tar-extract \(q(dst)) < \(q(tar)) 2>\(q(directory.path("x.err"))) || exit 2
            stat -c %s \(q(tar))
            stat -c '%s %b' \(q(src))/sparse \(q(dst))/sparse
            cmp <(dd if=\(q(src))/sparse bs=4096 skip=262144 count=2 status=none) \
                <(dd if=\(q(dst))/sparse bs=4096 skip=262144 count=2 status=none) && echo data-same
            """)
        let lines = result.output.split(separator: "\n").map(String.init)
        try #require(lines.count == 4, "\(result.output)")
        #expect(Int(lines[0])! < 64 << 10, "the tar of a 4 GiB file with 8 KiB of data holds only the data")
        let source = lines[1].split(separator: " ").compactMap { Int($0) }
        let restored = lines[2].split(separator: " ").compactMap { Int($0) }
        #expect(source[0] == 4 << 30 && restored[0] == 4 << 30)
        #expect(abs(restored[1] - source[1]) <= 16, "allocated 512-byte blocks: \(source[1]) before, \(restored[1]) after")
        #expect(lines[3] == "data-same")
        #expect(try Support.summary(directory.path("c.err")).sparseFiles == 1)
        #expect(try Support.summary(directory.path("x.err")).sparseFiles == 1)
    }

    @Test func aPathOf4095BytesIsBackedUpAndRestored() async throws {
        let directory = try ArchiveTestSupport.TemporaryDirectory()
        defer { directory.remove() }
        // Same length for both, so the restored file's absolute path is 4,095 bytes too.
        let src = directory.path("src")
        let dst = directory.path("dst")
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dst, withIntermediateDirectories: true)
        var components: [String] = []
        var length = src.utf8.count
        while 4095 - length - 1 > 255 {
            let name = String(repeating: "d", count: min(255, 4095 - length - 1 - 2))
            components.append(name)
            length += 1 + name.count
        }
        components.append(String(repeating: "f", count: 4095 - length - 1))
        let relative = components.joined(separator: "/")
        #expect((src + "/" + relative).utf8.count == 4095)
        let directories = components.dropLast().joined(separator: "/")
        try FileManager.default.createDirectory(atPath: src + "/" + directories, withIntermediateDirectories: true)
        try Data("deepest".utf8).write(to: URL(fileURLWithPath: src + "/" + relative))

        let result = try await Support.bash(
            "\(q(Support.binary)) helper tar-create \(q(src)) 2>/dev/null | "
                + "\(q(Support.binary)) helper tar-extract \(q(dst)) 2>&1 >/dev/null; echo \"${PIPESTATUS[@]}\"")
        #expect(result.output.hasSuffix("0 0\n"), "\(result.output)")
        let restored = try String(contentsOfFile: dst + "/" + relative, encoding: .utf8)
        #expect(restored == "deepest")
    }

    @Test func aStreamCutShortChangesNothing() async throws {
        let directory = try ArchiveTestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let src = directory.path("src")
        let dst = directory.path("dst")
        let tar = directory.path("t.tar")
        try await Support.bash("""
            set -e
            mkdir -p \(q(src))/a \(q(dst))/keep
            for i in $(seq 1 20); do head -c 5000 /dev/urandom > \(q(src))/a/f$i; done
            echo mine > \(q(dst))/keep/file; setfattr -n user.mine -v 1 \(q(dst))/keep/file
            \(q(Support.binary)) helper tar-create \(q(src)) > \(q(tar)) 2>/dev/null
            """)
        let before = try await Support.snapshot(dst)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: tar)[.size] as? Int)
        // Cut inside an entry's data, and cut exactly where the end-of-archive blocks begin.
        for cut in [size / 2, size - 1024] {
            let result = try await Support.bash(
                "head -c \(cut) \(q(tar)) | \(q(Support.binary)) helper tar-extract \(q(dst)); echo \"exit $?\"")
            #expect(result.output.contains("nothing was changed"), "\(result.output)")
            #expect(result.output.hasSuffix("exit 1\n"), "\(result.output)")
            #expect(try await Support.snapshot(dst) == before)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dst) == ["keep"])
        }
    }

    @Test func aSymlinkedPathIsResolvedAndTheLinkLeftAlone() async throws {
        let directory = try ArchiveTestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let result = try await Support.bash("""
            set -e
            cd \(q(directory.root))
            mkdir -p data/v1 data/v2; echo one > data/v1/file; echo two > data/v2/other
            ln -s v1 data/cur; ln -s \(q(directory.path("data/v2"))) data/abs
            \(q(Support.binary)) helper tar-create data/cur > cur.tar 2>cur.err
            tar -tf cur.tar | LC_ALL=C sort
            \(q(Support.binary)) helper tar-extract data/abs < cur.tar 2>abs.err
            readlink data/abs; ls data/v2
            """)
        #expect(result.output == "cur/\ncur/file\n\(directory.path("data/v2"))\nfile\n", "\(result.output)")
        let created = try Support.summary(directory.path("cur.err"))
        #expect(created.path == "data/cur")
        #expect(created.resolvedPath == directory.path("data/v1"))
        #expect(try Support.summary(directory.path("abs.err")).resolvedPath == directory.path("data/v2"))
    }

    /// A restore whose helper died with dockerd leaves its scratch directories in the volume (found by a trial:
    /// the next backup archived a half-written stage without a word). A backup leaves them out and says so; names
    /// that only look alike, and scratch names deeper down, are the application's and are kept.
    @Test func aRestoresLeftOverScratchDirectoriesAreLeftOutWithAWarning() async throws {
        let directory = try ArchiveTestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let result = try await Support.bash("""
            set -e
            cd \(q(directory.root))
            mkdir -p data/.stackvault-stage-1a2b data/.stackvault-old-1a2b/sub data/app/.stackvault-stage-keep
            echo half > data/.stackvault-stage-1a2b/w-17; echo old > data/.stackvault-old-1a2b/sub/f
            echo mine > data/.stackvault-stage-; echo mine > data/.stackvault-stagex; echo app > data/app/f
            echo deep > data/app/.stackvault-stage-keep/f
            \(q(Support.binary)) helper tar-create data > data.tar 2>data.err
            tar -tf data.tar | LC_ALL=C sort
            """)
        #expect(result.output == """
            data/
            data/.stackvault-stage-
            data/.stackvault-stagex
            data/app/
            data/app/.stackvault-stage-keep/
            data/app/.stackvault-stage-keep/f
            data/app/f

            """, "\(result.output)")
        let warnings = try Support.summary(directory.path("data.err")).warnings
        #expect(warnings.count == 2, "\(warnings)")
        #expect(warnings.contains { $0.hasPrefix(".stackvault-stage-1a2b: left out: the scratch directory of a restore") },
                "\(warnings)")
        #expect(warnings.contains { $0.hasPrefix(".stackvault-old-1a2b: left out") }, "\(warnings)")
    }

    /// Directories below a path longer than PATH_MAX: libarchive cannot set their owners and times (a trial saw
    /// them come back as 0:0 with the restore's time while the restore said it succeeded). The restore now
    /// refuses before the swap, naming what it could not restore, and the target keeps its old content.
    @Test func aTreeThatCannotBeRestoredExactlyChangesNothing() async throws {
        let directory = try ArchiveTestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let result = try await Support.bash("""
            set -e
            cd \(q(directory.root))
            mkdir data target; echo keep > target/keep
            name=$(printf 'd%.0s' $(seq 1 200))
            (cd data; for i in $(seq 1 25); do mkdir $name; chown 4321:8765 $name; cd $name; done; echo deep > f)
            \(q(Support.binary)) helper tar-create data > data.tar 2>create.err
            tail -n 1 create.err | grep -o '[0-9]* entries lie at paths of 4,096 bytes or more'
            \(q(Support.binary)) helper tar-extract target < data.tar 2>extract.err || echo "exit $?"
            ls -A target; cat target/keep
            """)
        #expect(result.output == "6 entries lie at paths of 4,096 bytes or more\nexit 1\nkeep\nkeep\n", "\(result.output)")
        let said = try String(contentsOfFile: directory.path("extract.err"), encoding: .utf8)
        #expect(said.contains("did not come out as the archive has them") && said.contains("owner 0:0, the archive has 4321:8765") && said.contains("nothing was changed"), "\(said)")
    }

    @Test func aMissingPathOrAFileIsRefusedNamingIt() async throws {
        let directory = try ArchiveTestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let missing = directory.path("nope")
        let file = directory.path("file")
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        for command in ["tar-create", "tar-extract"] {
            let gone = try await Support.bash(
                "\(q(Support.binary)) helper \(command) \(q(missing)) </dev/null 2>&1 >/dev/null; echo \"exit $?\"")
            #expect(gone.output.contains("cannot resolve the directory '\(missing)'"), "\(gone.output)")
            #expect(gone.output.contains("check that the path exists"))
            #expect(gone.output.hasSuffix("exit 1\n"))
            let notDirectory = try await Support.bash(
                "\(q(Support.binary)) helper \(command) \(q(file)) </dev/null 2>&1 >/dev/null; echo \"exit $?\"")
            #expect(notDirectory.output.contains("'\(file)' is not a directory"), "\(notDirectory.output)")
            #expect(notDirectory.output.hasSuffix("exit 1\n"))
        }
    }

    @Test func entriesOutsideTheTopDirectoryAreRefusedBeforeAnythingChanges() async throws {
        let directory = try ArchiveTestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let dst = directory.path("dst")
        try FileManager.default.createDirectory(atPath: dst, withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: URL(fileURLWithPath: dst + "/mine"))
        let cases = [
            ("outside", "t.add(dir('b')); t.add(file('b/x')); t.add(file('c/evil'))", "is outside its top directory"),
            ("dotdot", "t.add(dir('b')); t.add(file('b/../../evil'))", "contains a '..' component"),
            ("absolute", "t.add(dir('b')); t.add(file('/tmp/evil'))", "is an absolute path"),
            ("first-file", "t.add(file('b'))", "is not the top directory"),
        ]
        for (name, adds, message) in cases {
            let result = try await Support.bash("""
                python3 - <<'EOF' | \(q(Support.binary)) helper tar-extract \(q(dst)) 2>&1; echo "exit $?"
                import io, sys, tarfile
                def dir(n):
                    i = tarfile.TarInfo(n); i.type = tarfile.DIRTYPE; i.mode = 0o755; return i
                def file(n):
                    i = tarfile.TarInfo(n); i.size = 0; return i
                class T:
                    def __init__(s, t): s.t = t
                    def add(s, i): s.t.addfile(i, io.BytesIO(b''))
                with tarfile.open(fileobj=sys.stdout.buffer, mode='w|', format=tarfile.PAX_FORMAT) as raw:
                    t = T(raw)
                    \(adds)
                EOF
                """)
            #expect(result.output.contains(message), "\(name): \(result.output)")
            #expect(result.output.hasSuffix("exit 1\n"), "\(name)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dst) == ["mine"], "\(name)")
        }
    }

    @Test func removingATreeDeeperThanPathMaxNeedsNoLongPaths() async throws {
        let directory = try ArchiveTestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let root = directory.root
        // Off the cooperative pool: thousands of system calls.
        let left = try await runBlocking { _ in
            let rootFD = open(root, O_RDONLY | O_DIRECTORY)
            guard rootFD >= 0 else { throw StackVaultError(.io, "cannot open \(root)") }
            defer { close(rootFD) }
            // 1,500 levels of 2-byte names: a path of 4,500 bytes, more than PATH_MAX.
            var fd = dup(rootFD)
            for level in 0..<1500 {
                guard mkdirat(fd, "dd", 0o755) == 0 else { throw StackVaultError(.io, "mkdirat at level \(level)") }
                let next = openat(fd, "dd", O_RDONLY | O_DIRECTORY)
                close(fd)
                fd = next
                if level % 300 == 0 {  // files and a symlink to / on the way (the link must not be followed)
                    close(openat(fd, "f", O_CREAT | O_WRONLY, 0o644))
                    guard symlinkat("/", fd, "link") == 0 else { throw StackVaultError(.io, "symlinkat") }
                }
            }
            close(fd)
            try DirectoryTree.remove(Array("dd".utf8), in: rootFD, shown: root + "/dd")
            return try FileManager.default.contentsOfDirectory(atPath: root)
        }
        #expect(left == [], "\(left)")
    }
}

private func q(_ string: String) -> String {
    ArchiveTestSupport.quote(string)
}

/// Spawning the built `stackvault` binary and describing a directory tree with the standard tools.
enum DiskTarTestSupport {
    /// The `stackvault` executable built beside the test bundle (`swift build --build-tests` builds it too);
    /// `STACKVAULT_BINARY` overrides.
    static let binary: String = {
        if let path = ProcessInfo.processInfo.environment["STACKVAULT_BINARY"] { return path }
        var candidates: [String] = []
        if let executable = Bundle.main.executableURL {
            candidates.append(executable.deletingLastPathComponent().appendingPathComponent("stackvault").path)
        }
        for argument in ProcessInfo.processInfo.arguments where argument.contains(".xctest") {
            candidates.append(URL(fileURLWithPath: argument).deletingLastPathComponent()
                .appendingPathComponent("stackvault").path)
        }
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(package.appendingPathComponent(".build/debug/stackvault").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates.last!
    }()

    /// Runs a bash script (stdout and stderr together) without blocking a cooperative thread while it runs.
    @discardableResult
    static func bash(_ script: String) async throws -> (status: Int32, output: String) {
        #expect(FileManager.default.isExecutableFile(atPath: binary),
                "no stackvault binary at \(binary): run `swift build --build-tests` first")
        let output = FileManager.default.temporaryDirectory
            .appendingPathComponent("stackvault-disktar-\(UUID().uuidString).out")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        let process = ArchiveTestSupport.bashProcess(script)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        try handle.close()
        // Names in the trees need not be UTF-8: decode leniently.
        return (status, String(decoding: try Data(contentsOf: output), as: UTF8.self))
    }

    /// Every entry (sockets left out) with type, mode, owner, mtime in seconds, link count and device numbers;
    /// regular files' content digests; symlink targets; ACLs (numeric); all extended attributes (hex). Sorted by
    /// path, so that directory order does not matter.
    static func snapshot(_ path: String) async throws -> String {
        let result = try await bash("""
            cd \(q(path)) || exit 1
            find . ! -type s -exec stat -c '%n|%F|%a|%u|%g|%Y|%h|%t:%T' {} + | LC_ALL=C sort
            find . -type f ! -name sparse -exec md5sum {} + | LC_ALL=C sort -k2
            find . -type l -printf '%p -> %l\\n' | LC_ALL=C sort
            find . ! -type s ! -type l -print0 | LC_ALL=C sort -z | xargs -0 getfacl -p -n 2>&1
            find . ! -type s -print0 | LC_ALL=C sort -z | xargs -0 getfattr -h -d -m - -e hex 2>&1
            """)
        #expect(result.status == 0, "\(result.output)")
        return result.output
    }

    /// The JSON summary on the last line of a helper command's stderr (saved in `file`).
    static func summary(_ file: String) throws -> DiskTarSummary {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let line = try #require(text.split(separator: "\n").last, "empty stderr in \(file)")
        return try JSONDecoder().decode(DiskTarSummary.self, from: Data(line.utf8))
    }
}
