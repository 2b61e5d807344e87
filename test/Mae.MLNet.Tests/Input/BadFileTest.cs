using Mae.MLNet.Input;
using Mae.MLNet.Tests.Training;

namespace Mae.MLNet.Tests.Input;

/// <summary>Every kind of bad file: a clear <see cref="MaeImageFileException"/> naming it by default; skipped, counted
/// and listed with <see cref="MaeImageInputOptions.SkipBadFiles"/>. Never a native crash, never unbounded memory.</summary>
[TestClass]
public class BadFileTest
{
    /// <summary>A PNG whose header declares 50 000 × 50 000 pixels (10 GB as RGBA) and holds almost no data.</summary>
    internal static byte[] HugePngHeader() => PngHeader(50_000, 50_000);

    /// <summary>A PNG of about 65 bytes declaring <paramref name="width"/> × <paramref name="height"/> pixels and no data.</summary>
    internal static byte[] PngHeader(int width, int height) => Mae.MLNet.Tests.Interop.HostileFiles.PngHeader(width, height);

    /// <summary>Writes 8 good JPEGs and the named bad one; returns the bad file's path.</summary>
    static string Setup(TempDir dir, string kind)
    {
        InputTestUtil.WriteJpegs(dir.Path, 8);
        var jpeg = InputTestUtil.Jpeg(64, 48, 99);
        string bad = dir.File("img00003b.jpg"); // sorts between the good ones
        switch (kind)
        {
            case "truncated": File.WriteAllBytes(bad, jpeg.AsSpan(0, jpeg.Length / 2).ToArray()); break;
            case "corrupt":
                var c = jpeg.ToArray();
                // A damaged frame header: the SOF segment's component count (byte 9 of the segment) set to 7.
                int sof = Enumerable.Range(0, c.Length - 1).First(i => c[i] == 0xFF && c[i + 1] is 0xC0 or 0xC1 or 0xC2);
                c[sof + 9] = 7;
                File.WriteAllBytes(bad, c);
                break;
            case "text": File.WriteAllText(bad, "this is not an image\n"); break;
            case "empty": File.WriteAllBytes(bad, Array.Empty<byte>()); break;
            case "huge": File.WriteAllBytes(bad, HugePngHeader()); break;
            case "folder": Directory.CreateDirectory(bad); break;
            default: throw new ArgumentException(kind);
        }
        return bad;
    }

    static readonly string[] Kinds = { "truncated", "corrupt", "text", "empty", "huge" };

    static void Drain(IMaeImageSource source, MaeEpochPlan plan)
    {
        foreach (var t in source.Batches(plan)) t.Dispose();
    }

    [TestMethod]
    public void EachBadFileStopsWithItsName()
    {
        foreach (var kind in Kinds)
        {
            using var dir = new TempDir();
            string bad = Setup(dir, kind);
            var source = MaeImageFileSource.FromFolder(dir.Path, InputTestUtil.Options(workers: 2));
            long before = GC.GetTotalMemory(false);
            var e = Assert.ThrowsExactly<MaeImageFileException>(() => Drain(source, new MaeEpochPlan { BatchSize = 3, Training = false }), kind);
            Assert.AreEqual(bad, e.FileName, kind);
            StringAssert.Contains(e.Message, bad, kind);
            Console.WriteLine($"{kind}: {e.Reason}");
            if (kind == "huge")
            {
                StringAssert.Contains(e.Reason, "50000×50000");
                Assert.IsTrue(GC.GetTotalMemory(false) - before < 64 << 20, "the 50 000² header must be refused before decoding");
            }
        }
    }

    [TestMethod]
    public void MissingFileAndFolderAsFileAreNamed()
    {
        using var dir = new TempDir();
        InputTestUtil.WriteJpegs(dir.Path, 3);
        var paths = Directory.GetFiles(dir.Path).OrderBy(p => p, StringComparer.Ordinal).ToList();
        string missing = dir.File("gone.jpg"), folder = dir.File("folder.jpg");
        Directory.CreateDirectory(folder);
        foreach (var bad in new[] { missing, folder })
        {
            var source = MaeImageFileSource.FromPaths(paths.Append(bad), InputTestUtil.Options());
            var e = Assert.ThrowsExactly<MaeImageFileException>(() => Drain(source, new MaeEpochPlan { BatchSize = 2, Training = false }));
            Assert.AreEqual(bad, e.FileName);
            Console.WriteLine(e.Message);
        }
        var noFolder = Assert.ThrowsExactly<MaeImageFileException>(() => MaeImageFileSource.FromFolder(dir.File("nope")));
        StringAssert.Contains(noFolder.Message, "does not exist");
        using var empty = new TempDir();
        File.WriteAllText(empty.File("readme.txt"), "x");
        StringAssert.Contains(Assert.ThrowsExactly<MaeImageFileException>(() => MaeImageFileSource.FromFolder(empty.Path)).Message, "no image files");
    }

    [TestMethod]
    public void SkipBadFilesReplacesCountsAndListsThem()
    {
        using var dir = new TempDir();
        InputTestUtil.WriteJpegs(dir.Path, 8);
        var bad = new List<string>();
        foreach (var kind in Kinds)
        {
            using var sub = new TempDir();
            string p = Setup(sub, kind);
            string dst = dir.File($"bad_{kind}.jpg");
            File.Copy(p, dst);
            bad.Add(dst);
        }
        var options = InputTestUtil.Options(workers: 3);
        options.SkipBadFiles = true;
        var source = MaeImageFileSource.FromFolder(dir.Path, options);
        Assert.AreEqual(13, source.Count);
        var plan = new MaeEpochPlan { Seed = 4, BatchSize = 13 }; // one batch: every file is read
        var first = InputTestUtil.Collect(source, plan);
        Assert.AreEqual(1, first.Count);
        foreach (var s in source.SkippedFiles) Console.WriteLine($"skipped {s.FileName}: {s.Reason}");
        CollectionAssert.AreEquivalent(bad, source.SkippedFiles.Select(s => s.FileName).ToList());
        Assert.IsTrue(source.SkippedFiles.All(s => s.Reason.Length > 10));

        // Deterministic whatever the worker count.
        options.Workers = 1;
        var again = InputTestUtil.Collect(MaeImageFileSource.FromFolder(dir.Path, options), plan);
        InputTestUtil.AssertBatchesEqual(first, again, "skipping with 3 vs 1 workers");
    }

    /// <summary>Garbage in a JPEG's entropy-coded data (headers intact) is not detectable in general: libjpeg decodes
    /// it with warnings, as PIL does. What must hold: no crash, finite pixels of the right shape.</summary>
    [TestMethod]
    public void GarbledScanDataDecodesWithoutCrash()
    {
        using var dir = new TempDir();
        var c = InputTestUtil.Jpeg(64, 48, 99);
        int sos = Enumerable.Range(0, c.Length - 1).First(i => c[i] == 0xFF && c[i + 1] == 0xDA);
        for (int i = sos + 20; i < c.Length - 2; i++) c[i] = (byte)(i % 3 == 0 ? 0xFF : (i * 7) & 0xFF);
        File.WriteAllBytes(dir.File("garbled.jpg"), c);
        var source = MaeImageFileSource.FromFolder(dir.Path, InputTestUtil.Options());
        var batch = InputTestUtil.Collect(source, new MaeEpochPlan { BatchSize = 1, Training = false }).Single();
        Assert.AreEqual(3 * 16 * 16, batch.Length);
        Assert.IsTrue(batch.All(float.IsFinite));
    }
}
