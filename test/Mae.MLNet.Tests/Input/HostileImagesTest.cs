using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Text;
using Mae.MLNet.Input;
using Mae.MLNet.Training;
using Mae.MLNet.Tests.Interop;
using Mae.MLNet.Tests.Training;

namespace Mae.MLNet.Tests.Input;

/// <summary>
/// Issue 23, images and image folders: files a user or an attacker can put in an image folder. Each case is a small
/// file the test makes; each must end in a <see cref="MaeImageFileException"/> naming the file (or a documented
/// skip), within 200 MB of peak memory, and never hang a reader.
/// </summary>
[TestClass]
public class HostileImagesTest
{
    const long Bound = 200L << 20;

    static void Drain(IMaeImageSource source, MaeEpochPlan plan)
    {
        foreach (var t in source.Batches(plan)) t.Dispose();
    }

    /// <summary>Runs <paramref name="action"/> on a background thread and fails, instead of hanging the test run, when
    /// it has not returned after <paramref name="seconds"/> (a reader blocked on a pipe never would).</summary>
    static void Returns(Action action, string what, int seconds = 60)
    {
        Exception? error = null;
        var thread = new Thread(() => { try { action(); } catch (Exception e) { error = e; } }) { IsBackground = true };
        thread.Start();
        Assert.IsTrue(thread.Join(TimeSpan.FromSeconds(seconds)), $"{what} had not returned after {seconds} s: a reader is blocked");
        if (error is not null) ExceptionDispatchInfo.Capture(error).Throw();
    }

    static void RequireLinux(string why)
    {
        if (!OperatingSystem.IsLinux()) Assert.Inconclusive($"{why} (Linux only).");
    }

    /// <summary>Small files whose headers declare an extreme aspect ratio under MaxPixels: a 400-byte JPEG of 65 500 × 2 (libjpeg's largest side)
    /// (and 2 × 65 500), a 65-byte PNG of 2 × 1 000 000 (and 1 000 000 × 2; libpng's largest side). The evaluation
    /// transform at 224 px (the default) resizes the short side to 256 px, which makes the long side 8 M px (JPEG) or 128 M px (PNG): computing
    /// that whole grid's taps (68 bytes per output) took 0.57 GB (JPEG) or 8.7 GB (PNG) per worker, and the failure was no MaeImageFileException. Now only the
    /// centre window's taps are computed; every file, on every plan, is refused by name (or, for the JPEGs, whose
    /// missing scan libjpeg fills with grey, decoded) within the bound.</summary>
    [TestMethod]
    public void ExtremeAspectRatioHeadersCostTheWindowNotTheGrid()
    {
        RequireLinux("Peak memory is measured through /proc/self/clear_refs");
        var files = new (string Name, byte[] Bytes)[]
        {
            ("wide.jpg", HostileFiles.JpegHeader(65_500, 2)), ("tall.jpg", HostileFiles.JpegHeader(2, 65_500)),
            ("tall.png", BadFileTest.PngHeader(2, 1_000_000)), ("wide.png", BadFileTest.PngHeader(1_000_000, 2)),
        };
        // The first decode of a process loads the codecs' native code; it is not what is measured.
        using (var warm = new TempDir())
        {
            InputTestUtil.WriteJpegs(warm.Path, 1);
            InputTestUtil.Collect(MaeImageFileSource.FromFolder(warm.Path, InputTestUtil.Options(workers: 1)), new MaeEpochPlan { BatchSize = 1, Training = false });
        }
        foreach (var (name, bytes) in files)
            foreach (bool training in new[] { false, true })
            {
                using var dir = new TempDir();
                string bad = dir.File(name);
                File.WriteAllBytes(bad, bytes);
                var source = MaeImageFileSource.FromFolder(dir.Path, InputTestUtil.Options(size: 224, workers: 1));
                List<float[]>? batches = null;
                var r = PeakMemory.Measure(() => batches = InputTestUtil.Collect(source, new MaeEpochPlan { BatchSize = 1, Training = training }));
                string what = $"{name}, {bytes.Length} bytes ({(training ? "training" : "evaluation")} plan)";
                Console.WriteLine($"{what}: {r.Error?.GetType().Name ?? "decoded"}, peak RSS +{r.PeakMiB:F1} MiB, managed {r.ManagedMiB:F1} MiB: {r.Error?.Message}");
                if (r.Error is null)
                {
                    // libjpeg decodes a scan that ends early as grey (with a warning): an image like any other.
                    Assert.AreEqual(3 * 224 * 224, batches!.Single().Length, what);
                    Assert.IsTrue(batches![0].All(float.IsFinite), what);
                }
                else
                {
                    Assert.IsInstanceOfType<MaeImageFileException>(r.Error, $"{what}: {r.Error}");
                    Assert.AreEqual(bad, ((MaeImageFileException)r.Error).FileName, what);
                }
                Assert.IsLessThan(Bound, r.PeakRssGrowth, $"{what}: peak resident set grew by {r.PeakMiB:F0} MiB");
                Assert.IsLessThan(Bound, r.ManagedAllocated, $"{what}: {r.ManagedMiB:F0} MiB of managed memory allocated");
            }
    }

    /// <summary>The same file among good ones with SkipBadFiles: skipped and listed; the batch is full.</summary>
    [TestMethod]
    public void ExtremeAspectRatioHeaderIsSkippable()
    {
        using var dir = new TempDir();
        InputTestUtil.WriteJpegs(dir.Path, 3);
        string bad = dir.File("img00001b.png");
        File.WriteAllBytes(bad, BadFileTest.PngHeader(2, 1_000_000));
        var options = InputTestUtil.Options(workers: 2);
        options.SkipBadFiles = true;
        var source = MaeImageFileSource.FromFolder(dir.Path, options);
        var batches = InputTestUtil.Collect(source, new MaeEpochPlan { BatchSize = 4, Training = false });
        Assert.AreEqual(4 * 3 * 16 * 16, batches.Single().Length);
        Assert.AreEqual(bad, source.SkippedFiles.Single().FileName);
    }

    /// <summary>The window's taps are exactly the whole grid's taps at those outputs (the reference: Pillow's
    /// precompute_coeffs over the whole output axis, as <see cref="PilAxis.Compute(double, double, int, int)"/> does),
    /// for an upscale, a downscale and a fractional span.</summary>
    [TestMethod]
    public void WindowTapsEqualTheWholeGridsTaps()
    {
        foreach (var (in0, in1, inSize, outSize, start, length) in new[]
                 { (0.0, 3.0, 3, 1000, 388, 224), (0.0, 5000.0, 5000, 300, 38, 224), (0.3, 97.6, 100, 257, 16, 224) })
        {
            var full = PilAxis.Compute(in0, in1, inSize, outSize);
            var window = PilAxis.Compute(in0, in1, inSize, (long)outSize, start, length);
            Assert.AreEqual(full.KSize, window.KSize);
            Assert.AreEqual(length, window.OutSize);
            int k = full.KSize;
            CollectionAssert.AreEqual(full.First.AsSpan(start, length).ToArray(), window.First);
            CollectionAssert.AreEqual(full.Count.AsSpan(start, length).ToArray(), window.Count);
            CollectionAssert.AreEqual(full.Fixed.AsSpan(start * k, length * k).ToArray(), window.Fixed);
            CollectionAssert.AreEqual(full.Weights.AsSpan(start * k, length * k).ToArray(), window.Weights);
        }
    }

    /// <summary>An <see cref="EncodedImageList"/> that counts reads.</summary>
    sealed class CountingList(EncodedImageList inner) : EncodedImageList
    {
        public long Reads;
        public override long Count => inner.Count;
        public override string Name(long index) => inner.Name(index);
        public override int Read(long index, ref byte[] buffer, long maxBytes)
        {
            Interlocked.Increment(ref Reads);
            return inner.Read(index, ref buffer, maxBytes);
        }
    }

    /// <summary>300 images of which 296 are bad (in runs of about 100): every position of a bad run used to read the
    /// whole rest of the run (about 15 000 reads per epoch, quadratic in the run); now each bad file is read once per
    /// run (per worker that meets it first) and each position reads one good file: at most (workers + 1) · n reads in
    /// the first epoch and n in the next. With every file bad, the epoch fails after reading each about once per worker.</summary>
    [TestMethod]
    public void SkippingBadFilesCostsLinearReads()
    {
        const int n = 300;
        var good = new HashSet<int> { 0, 100, 200, 299 };
        var jpeg = InputTestUtil.Jpeg(20, 20, 5);
        var items = Enumerable.Range(0, n).Select(i => good.Contains(i) ? jpeg : Encoding.ASCII.GetBytes($"not an image {i}")).ToList();
        var options = InputTestUtil.Options(workers: 2);
        options.SkipBadFiles = true;
        var list = new CountingList(new BytesImageList(items, null));
        var reader = new ImageBatchReader(list, null, options.Validate());
        for (int epoch = 0; epoch < 2; epoch++)
        {
            long before = list.Reads;
            foreach (var (images, _) in reader.Batches(new MaeEpochPlan { Seed = 3, Epoch = epoch, BatchSize = 4 })) images.Dispose();
            long reads = list.Reads - before;
            Console.WriteLine($"epoch {epoch}: {reads} reads for {n} positions");
            // Two workers can meet the same bad run before either has marked it, so each may read it: at most
            // (workers + 1) · n in the first epoch, far under the quadratic ~15 000; later ones read good files only.
            Assert.IsLessThanOrEqualTo(epoch == 0 ? (options.Workers + 1L) * n : n, reads, $"epoch {epoch}");
        }
        Assert.AreEqual(n - good.Count, reader.Skipped.Count);

        var allBad = new CountingList(new BytesImageList(Enumerable.Range(0, n).Select(i => new byte[] { 1, 2, 3 }).ToList(), null));
        var none = new ImageBatchReader(allBad, null, options.Validate());
        var e = Assert.ThrowsExactly<MaeImageFileException>(() =>
        {
            foreach (var (images, _) in none.Batches(new MaeEpochPlan { BatchSize = 4 })) images.Dispose();
        });
        StringAssert.Contains(e.Message, $"none of the {n} images");
        Assert.IsLessThanOrEqualTo(options.Workers * (long)n, allBad.Reads, "reads with every file bad");
    }

    /// <summary>A FIFO named like an image (a reader used to block in open() for ever, with or without SkipBadFiles),
    /// and a link to /dev/zero (a file that never ends): refused by name as not regular files, or skipped.</summary>
    [TestMethod]
    public void PipesAndDevicesNamedLikeImagesAreRefusedNotWaitedOn()
    {
        RequireLinux("FIFOs are made with mkfifo");
        foreach (var kind in new[] { "fifo", "device" })
        {
            using var dir = new TempDir();
            InputTestUtil.WriteJpegs(dir.Path, 3);
            string bad = dir.File("img00001b.jpg");
            if (kind == "fifo") HostileFiles.MakeFifo(bad);
            else File.CreateSymbolicLink(bad, "/dev/zero");
            string expected = kind == "fifo" ? "FIFO" : "character device";

            var source = MaeImageFileSource.FromFolder(dir.Path, InputTestUtil.Options(workers: 2));
            Assert.AreEqual(4, source.Count, "the special file is listed (it is named like an image)");
            MaeImageFileException? error = null;
            Returns(() => error = Assert.ThrowsExactly<MaeImageFileException>(() => Drain(source, new MaeEpochPlan { BatchSize = 4, Training = false })), kind);
            Console.WriteLine(error!.Message);
            Assert.AreEqual(bad, error.FileName);
            StringAssert.Contains(error.Reason, expected);

            var options = InputTestUtil.Options(workers: 2);
            options.SkipBadFiles = true;
            var skipping = MaeImageFileSource.FromFolder(dir.Path, options);
            Returns(() => Drain(skipping, new MaeEpochPlan { BatchSize = 4, Training = false }), kind + " with SkipBadFiles");
            Assert.AreEqual(bad, skipping.SkippedFiles.Single().FileName);
        }
    }

    /// <summary>A link from a sub-folder back to the top (a loop: enumeration used to descend until the path was too
    /// long, multiplying the data set) and a second link to a folder already walked: each folder is walked once, by
    /// its real path, preferring the real folder to a link; each image is listed once.</summary>
    [TestMethod]
    public void FolderLinksAreFollowedOnceAndNeverLoop()
    {
        RequireLinux("symbolic links to folders");
        using var dir = new TempDir();
        string sub = Path.Combine(dir.Path, "sub"), linked = Path.Combine(dir.Path, "zz-elsewhere");
        InputTestUtil.WriteJpegs(dir.Path, 1);
        InputTestUtil.WriteJpegs(sub, 2, seed0: 10);
        using var outside = new TempDir();
        InputTestUtil.WriteJpegs(outside.Path, 1, seed0: 20);
        Directory.CreateSymbolicLink(Path.Combine(sub, "loop"), dir.Path);        // back to the top
        Directory.CreateSymbolicLink(Path.Combine(dir.Path, "alias"), sub);       // a second way into sub
        Directory.CreateSymbolicLink(linked, outside.Path);                       // a folder kept elsewhere
        var listed = MaeImageFolder.ListImages(dir.Path);
        var expected = new[]
        {
            Path.Combine(dir.Path, "img00000.jpg"), Path.Combine(sub, "img00000.jpg"), Path.Combine(sub, "img00001.jpg"),
            Path.Combine(linked, "img00000.jpg"),
        };
        CollectionAssert.AreEqual(expected, listed.ToArray(), string.Join("\n", listed));
    }

    [DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    static extern int Rename(byte[] from, byte[] to);

    /// <summary>A file whose name is not UTF-8 (byte 0xFF): .NET lists it with U+FFFD, which no longer names the file.
    /// It used to be reported as missing; now the message says why it cannot be opened, and SkipBadFiles skips it.</summary>
    [TestMethod]
    public void NonUtf8FileNameIsRefusedByNameNotReportedMissing()
    {
        RequireLinux("file names as raw bytes");
        using var dir = new TempDir();
        InputTestUtil.WriteJpegs(dir.Path, 2);
        string good = dir.File("img00000.jpg");
        var from = Encoding.UTF8.GetBytes(good + "\0");
        var to = Encoding.UTF8.GetBytes(dir.File("img00000-")).Concat(new byte[] { 0xFF }).Concat(".jpg\0"u8.ToArray()).ToArray();
        Assert.AreEqual(0, Rename(from, to), $"rename failed (errno {Marshal.GetLastPInvokeError()})");
        var source = MaeImageFileSource.FromFolder(dir.Path, InputTestUtil.Options());
        Assert.AreEqual(2, source.Count);
        var e = Assert.ThrowsExactly<MaeImageFileException>(() => Drain(source, new MaeEpochPlan { BatchSize = 2, Training = false }));
        Console.WriteLine(e.Message);
        StringAssert.Contains(e.FileName, "\uFFFD");
        StringAssert.Contains(e.Reason, "not valid UTF-8");
        var options = InputTestUtil.Options();
        options.SkipBadFiles = true;
        var skipping = MaeImageFileSource.FromFolder(dir.Path, options);
        Drain(skipping, new MaeEpochPlan { BatchSize = 2, Training = false });
        StringAssert.Contains(skipping.SkippedFiles.Single().Reason, "not valid UTF-8");
    }
}
