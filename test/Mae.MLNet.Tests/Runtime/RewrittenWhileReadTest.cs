using System.Text.Json;
using Mae.MLNet.Model;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Runtime;
using Mae.MLNet.Tests.Interop;
using Mae.MLNet.Tests.Training;
using Mae.MLNet.Training;

namespace Mae.MLNet.Tests;   // not …Tests.Runtime: that would hide Mae.MLNet.Runtime in the other tests

/// <summary>
/// Issue 23: a file rewritten, truncated or grown while it is read is refused, naming it, never used as a mix of two
/// versions. Every reader opens through <see cref="RegularFile.OpenRead"/>, which remembers the version it opened
/// (inode, size, the kernel's ctime and mtime); readers check it after reading. Each rewrite here comes at least 20 ms
/// after the file was written, beyond the kernel's timestamp tick (the documented blind spot is a same-size rewrite
/// within one tick of the write before the open).
/// </summary>
[TestClass]
public class RewrittenWhileReadTest
{
    static void Later() => Thread.Sleep(20);

    [TestMethod]
    public void EachKindOfRewriteIsSeenAndAnUntouchedFileIsNot()
    {
        using var dir = new TempDir();
        var bytes = Enumerable.Range(0, 4096).Select(i => (byte)i).ToArray();
        foreach (var (name, rewrite) in new (string, Action<string>)[]
        {
            ("in-place", p => { using var w = new FileStream(p, FileMode.Open, FileAccess.Write); w.Position = 100; w.WriteByte(0xAA); }),
            ("truncated", p => { using var w = new FileStream(p, FileMode.Open, FileAccess.Write); w.SetLength(1000); }),
            ("grown", p => File.AppendAllText(p, "more")),
            ("replaced", p => { File.WriteAllBytes(p + ".new", bytes); File.Move(p + ".new", p, overwrite: true); }),
        })
        {
            string path = dir.File(name + ".bin");
            File.WriteAllBytes(path, bytes);
            using var file = RegularFile.OpenRead(path);
            file.ReadExactly(new byte[bytes.Length]);
            file.CheckUnchanged();   // nothing happened yet
            Later();
            rewrite(path);
            // "replaced" (renamed over): the open handle still reads the old version, but the kernel sets its ctime when
            // its last name goes, so it is refused too — on the safe side: read again, the new version is whole.
            var e = Assert.ThrowsExactly<FileChangedException>(file.CheckUnchanged, name);
            StringAssert.Contains(e.Message, path);
            StringAssert.Contains(e.Message, "changed while it was read");
        }
    }

    /// <summary>A checkpoint is verified (SHA-256 over its payload) when it is opened, and its sections are read after:
    /// a byte rewritten in place between the two used to be loaded unchecked. Now the section's load refuses it.</summary>
    [TestMethod]
    public void ACheckpointRewrittenAfterItsChecksumIsRefusedByName()
    {
        using var dir = new TempDir();
        using var model = new MaskedAutoencoder(HostileFiles.ConfigI);
        string path = HostileFiles.WriteCheckpoint(dir.File("checkpoint-0001.maeckpt"), "MAECKPT1",
            JsonSerializer.Serialize(new MaePretrainCheckpointHeader { Config = HostileFiles.ConfigI, EpochsCompleted = 1 }), model);
        using (var intact = MaePretrainCheckpoint.Training.Open(path))
        using (var same = new MaskedAutoencoder(HostileFiles.ConfigI))
            intact.LoadModel(same);   // the file as written loads

        using var reader = MaePretrainCheckpoint.Training.Open(path);   // verified here
        Later();
        using (var w = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            w.Position = w.Length - 40 - 1;   // the last byte of the last weight (the trailer is 8 + 32 bytes)
            w.WriteByte(0x7F);
        }
        using var target = new MaskedAutoencoder(HostileFiles.ConfigI);
        var e = Assert.ThrowsExactly<MaeTrainingCheckpointException>(() => reader.LoadModel(target));
        Assert.AreEqual(path, e.FilePath);
        StringAssert.Contains(e.Message, "changed while it was read");
    }

    /// <summary>An image file grown between the open and the end of the read: <see cref="FileImageList.ReadFile"/> reads
    /// the length it had when opened and then checks the version, so a file still being copied is a bad file (named,
    /// skippable) rather than decoded from its first part. Simulated by reading a file a writer keeps appending to.</summary>
    [TestMethod]
    public void AnImageStillBeingWrittenIsABadFileNamingIt()
    {
        using var dir = new TempDir();
        string path = dir.File("growing.jpg");
        Mae.MLNet.Tests.Input.InputTestUtil.WriteJpegs(dir.Path, 1);
        File.Move(dir.File("img00000.jpg"), path);
        Later();
        using var stop = new CancellationTokenSource();
        long appends = 0;
        using var started = new ManualResetEventSlim();
        var writer = Task.Run(() =>
        {
            using var w = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
            while (!stop.IsCancellationRequested)
            {
                w.Write(new byte[4 << 10]);
                w.Flush();
                Interlocked.Increment(ref appends);
                started.Set();
            }
        });
        try
        {
            // Each read opens the file, reads the length it had then, and checks: with a writer appending all the time,
            // the checks see the growth (a read that happened to fall between two appends is one whole version: retried).
            // Reads start once the writer is appending, and go on while it appends (a count of its appends, not a time),
            // so a writer the scheduler has not run yet cannot make the test fail.
            Assert.IsTrue(started.Wait(TimeSpan.FromMinutes(2)), "the writer never appended");
            var buffer = Array.Empty<byte>();
            Mae.MLNet.Input.MaeImageFileException? refused = null;
            for (long until = Interlocked.Read(ref appends) + 20_000; refused is null && Interlocked.Read(ref appends) < until && !writer.IsCompleted;)
            {
                try { Mae.MLNet.Input.FileImageList.ReadFile(path, ref buffer, long.MaxValue); }
                catch (Mae.MLNet.Input.MaeImageFileException e) { refused = e; }
            }
            Assert.IsNotNull(refused, "no read saw the file change");
            Assert.AreEqual(path, refused.FileName);
            StringAssert.Contains(refused.Reason, "changed while it was read");
        }
        finally { stop.Cancel(); writer.Wait(); }
    }
}
