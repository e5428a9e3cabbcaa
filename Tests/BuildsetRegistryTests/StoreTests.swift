import Foundation
import Hashing
import Storage
import Testing

@Suite struct StoreTests {
    let directory = TemporaryDirectory()
    let name = RepositoryName("team/app")!

    func makeStore() throws -> RegistryStore {
        RegistryStore(driver: try FilesystemDriver(root: directory.path))
    }

    func append(_ bytes: [UInt8], to appender: UploadAppender) throws {
        try bytes.withUnsafeBytes { try appender.append($0) }
    }

    @Test func uploadContinuesInAnotherStoreInstance() throws {
        let content = Fixture.randomBytes(300_000)
        let digest = Digest.sha256(of: content)
        let first = try makeStore()
        let id = try first.startUpload(in: name)
        let appender = try first.openUpload(id, in: name, expectedOffset: 0)
        try append(Array(content[..<100_000]), to: appender)
        #expect(try appender.save() == 100_000)

        // A second store over the same root stands for a restarted server or another replica.
        let second = try makeStore()
        #expect(try second.uploadStatus(id, in: name)?.offset == 100_000)
        let next = try second.openUpload(id, in: name, expectedOffset: 100_000)
        try append(Array(content[100_000...]), to: next)
        try next.commit(as: digest)

        #expect(try first.blobSize(digest, in: name) == 300_000)
        let reader = try #require(try first.openBlob(digest, in: name))
        var read = [UInt8](repeating: 0, count: 300_000)
        var position = 0
        while position < read.count {
            let count = try read.withUnsafeMutableBytes {
                try reader.read(at: Int64(position), into: UnsafeMutableRawBufferPointer(rebasing: $0[position...]))
            }
            #expect(count > 0)
            position += count
        }
        #expect(read == content)
        #expect(try first.uploadStatus(id, in: name) == nil)
    }

    @Test func refusesChunkAtWrongOffset() throws {
        let store = try makeStore()
        let id = try store.startUpload(in: name)
        #expect(throws: RegistryStoreError.self) { try store.openUpload(id, in: name, expectedOffset: 5) }
        #expect(throws: RegistryStoreError.self) { try store.openUpload(id, in: RepositoryName("other")!) }
    }

    @Test func rejectsDigestMismatchAndLeavesNothingVisible() throws {
        let store = try makeStore()
        let id = try store.startUpload(in: name)
        let appender = try store.openUpload(id, in: name)
        try append(Array("real content".utf8), to: appender)
        let claimed = Digest.sha256(of: Array("other content".utf8))
        #expect(throws: RegistryStoreError.self) { try appender.commit(as: claimed) }
        #expect(try store.blobSize(claimed, in: name) == nil)
        #expect(try store.driver.info(StorageLayout.blob(claimed, in: .local)) == nil)
        #expect(try store.uploadStatus(id, in: name) == nil)
    }

    @Test func truncatesBytesWrittenPastTheRecordedOffset() throws {
        let store = try makeStore()
        let id = try store.startUpload(in: name)
        let appender = try store.openUpload(id, in: name)
        try append(Array("abc".utf8), to: appender)
        try appender.save()

        // A writer that died after writing and before recording leaves extra bytes in the data file.
        let data = directory.path + "/_uploads/\(id)/data"
        let handle = try #require(FileHandle(forWritingAtPath: data))
        handle.seekToEndOfFile()
        handle.write(Data("junk".utf8))
        try handle.close()

        let resumed = try store.openUpload(id, in: name, expectedOffset: 3)
        try append(Array("def".utf8), to: resumed)
        try resumed.commit(as: Digest.sha256(of: Array("abcdef".utf8)))
        #expect(try store.blobSize(Digest.sha256(of: Array("abcdef".utf8)), in: name) == 6)
    }

    @Test func interruptedRequestKeepsWhatArrived() throws {
        let store = try makeStore()
        let id = try store.startUpload(in: name)
        let appender = try store.openUpload(id, in: name)
        try append(Array("partial".utf8), to: appender)
        appender.saveAfterInterruption()
        #expect(try store.uploadStatus(id, in: name)?.offset == 7)
    }

    @Test func manifestsAndTagsRoundTrip() throws {
        let store = try makeStore()
        let bytes = Array("{\"schemaVersion\":2}".utf8)
        let digest = Digest.sha256(of: bytes)
        try store.putManifest(
            bytes, digest: digest, mediaType: "application/x-test", in: name, tag: Tag("v1"), subject: nil,
            referrerDescriptor: nil)
        #expect(try store.manifest(.tag(Tag("v1")!), in: name)?.digest == digest)
        #expect(try store.manifest(.digest(digest), in: name)?.mediaType == "application/x-test")
        #expect(try store.tags(in: name) == [Tag("v1")!])
        #expect(try store.repositories() == [name])
        #expect(try store.deleteManifest(digest, in: name))
        #expect(try store.manifest(.tag(Tag("v1")!), in: name) == nil)
        #expect(try store.tags(in: name).isEmpty)
    }

    @Test func listsUploadsWithTheirAge() throws {
        let store = try makeStore()
        let id = try store.startUpload(in: name)
        let listed = try store.uploads()
        #expect(listed.map(\.id) == [id])
        #expect(abs(listed[0].startedAt.timeIntervalSinceNow) < 60)
    }

    @Test func recoveryRemovesTornBlobsAndKeepsWholeOnes() throws {
        let store = try makeStore()
        let whole = Fixture.randomBytes(5000)
        let torn = Fixture.randomBytes(5000)
        for blob in [whole, torn] {
            let id = try store.startUpload(in: name)
            let appender = try store.openUpload(id, in: name)
            try append(blob, to: appender)
            try appender.commit(as: Digest.sha256(of: blob))
        }
        store.driver.waitUntilDurable()
        #expect(try store.driver.unsyncedObjects().isEmpty)

        // As after a power loss: both commits still have records, and one file lost its tail.
        let wholePath = StorageLayout.blob(Digest.sha256(of: whole), in: .local)
        let tornPath = StorageLayout.blob(Digest.sha256(of: torn), in: .local)
        for (index, path) in [wholePath, tornPath].enumerated() {
            try Data(path.description.utf8).write(to: URL(fileURLWithPath: directory.path + "/_sync/record\(index)"))
        }
        #expect(truncate(directory.path + "/" + tornPath.description, 1000) == 0)

        let recovery = try makeStore().recoverUnsyncedContent()
        #expect(recovery.checked == 2)
        #expect(recovery.removed == 1)
        #expect(try store.blobSize(Digest.sha256(of: whole), in: name) == 5000)
        #expect(try store.blobSize(Digest.sha256(of: torn), in: name) == nil)
        #expect(try store.driver.unsyncedObjects().isEmpty)
    }

    /// Rewrites an upload's state as if it had been written before the machine restarted.
    func pretendWrittenInAnEarlierBoot(_ id: UploadID) throws {
        let path = directory.path + "/_uploads/\(id)/state"
        var record = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        record["writer"] = "an-earlier-boot"
        try JSONSerialization.data(withJSONObject: record).write(to: URL(fileURLWithPath: path))
    }

    @Test func uploadFromAnEarlierBootIsRehashedFromDisk() throws {
        let store = try makeStore()
        let content = Fixture.randomBytes(2000)
        for tornByte in [false, true] {
            let id = try store.startUpload(in: name)
            let first = try store.openUpload(id, in: name)
            try append(Array(content[..<1000]), to: first)
            try first.save()
            try pretendWrittenInAnEarlierBoot(id)
            if tornByte {
                let handle = try #require(FileHandle(forWritingAtPath: directory.path + "/_uploads/\(id)/data"))
                handle.seek(toFileOffset: 500)
                handle.write(Data([content[500] ^ 0xff]))
                try handle.close()
            }
            let resumed = try store.openUpload(id, in: name, expectedOffset: 1000)
            try append(Array(content[1000...]), to: resumed)
            if tornByte {
                #expect(throws: RegistryStoreError.self) { try resumed.commit(as: Digest.sha256(of: content)) }
            } else {
                try resumed.commit(as: Digest.sha256(of: content))
                #expect(try store.blobSize(Digest.sha256(of: content), in: name) == 2000)
                _ = try store.deleteBlob(Digest.sha256(of: content), from: name)
                try store.driver.delete(StorageLayout.blob(Digest.sha256(of: content), in: .local))
            }
        }
    }

    @Test func recordsFromThisBootNeedNoCheck() throws {
        let store = try makeStore()
        let blob = Fixture.randomBytes(100)
        let path = StorageLayout.blob(Digest.sha256(of: blob), in: .local)
        try store.driver.write(path, blob)
        let record = directory.path + "/_sync/killed-process"
        try Data((store.driver.writerIdentity + "\n" + path.description).utf8).write(to: URL(fileURLWithPath: record))
        #expect(try store.driver.unsyncedObjects().isEmpty)
        #expect(try store.recoverUnsyncedContent().checked == 0)
        #expect(!FileManager.default.fileExists(atPath: record))
    }
}

@Suite struct UploadPipelineTests {
    @Test func anUploadGivenUpMidwayReleasesItsBuffers() throws {
        let directory = TemporaryDirectory()
        let store = RegistryStore(driver: try FilesystemDriver(root: directory.path))
        let name = RepositoryName("abandoned")!
        for size in [100, 300_000, 1_500_000, 5_000_000] {
            let id = try store.startUpload(in: name)
            var appender: UploadAppender? = try store.openUpload(id, in: name)
            try Fixture.randomBytes(size).withUnsafeBytes { try appender!.append($0) }
            appender = nil
            #expect(try store.uploadStatus(id, in: name)?.offset == 0)
        }
    }
}
