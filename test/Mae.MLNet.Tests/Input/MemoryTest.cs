using System.Diagnostics;
using Mae.MLNet.Input;
using Mae.MLNet.Tests.Training;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Input;

/// <summary>Memory is bounded by the prefetch ring, not by the data set.</summary>
[TestClass]
public class MemoryTest
{
    [TestMethod]
    public void WorkersStopAtTheEndOfTheRing()
    {
        using var dir = new TempDir();
        var png = InputTestUtil.Png(20, 20, 1);
        var paths = Enumerable.Range(0, 400).Select(i => dir.File($"{i:D4}.png")).ToList();
        foreach (var p in paths) File.WriteAllBytes(p, png);
        var source = MaeImageFileSource.FromPaths(paths, InputTestUtil.Options(workers: 4, prefetch: 2));
        using var e = source.Batches(new MaeEpochPlan { Seed = 1, BatchSize = 10 }).GetEnumerator();
        Assert.IsTrue(e.MoveNext());
        e.Current.Dispose();
        // Wait for the state, not for a time: every worker blocked on the ring (or, were nothing holding them back,
        // done with all 400 images).
        Assert.IsTrue(source.Reader.Prefetcher!.WaitUntilIdle(TimeSpan.FromMinutes(2)), "the workers never came to rest");
        long produced = source.Reader.ImagesProduced;
        Assert.AreEqual(10 + 3 * 10, produced, "one batch taken: the ring of 3 slots then holds exactly the next 3 batches of 10");
    }

    [TestMethod]
    public void MemoryStaysFlatOver20000Images()
    {
        using var dir = new TempDir();
        var png = InputTestUtil.Jpeg(24, 20, 3);
        var paths = Enumerable.Range(0, 20_000).Select(i => dir.File($"{i:D5}.jpg")).ToList();
        foreach (var p in paths) File.WriteAllBytes(p, png);
        var source = MaeImageFileSource.FromPaths(paths, InputTestUtil.Options(size: 16, workers: 2, prefetch: 2));
        using var proc = Process.GetCurrentProcess();
        long tensorsBefore = Tensor.TotalCount;
        long rssAfterWarmup = 0, peak = 0, managedAfterWarmup = 0;
        int batches = 0;
        foreach (var t in source.Batches(new MaeEpochPlan { Seed = 2, BatchSize = 50 }))
        {
            using (NewDisposeScope()) _ = t.sum().item<float>();
            t.Dispose();
            batches++;
            proc.Refresh();
            if (batches == 40)
            {
                managedAfterWarmup = GC.GetTotalMemory(true);
                proc.Refresh();
                rssAfterWarmup = proc.WorkingSet64;
            }
            if (batches > 40) peak = Math.Max(peak, proc.WorkingSet64);
        }
        Assert.AreEqual(400, batches);
        long managedEnd = GC.GetTotalMemory(true);
        double rssGrowthMb = (peak - rssAfterWarmup) / 1048576.0, managedGrowthMb = (managedEnd - managedAfterWarmup) / 1048576.0;
        Console.WriteLine($"RSS after 40 batches {rssAfterWarmup / 1048576.0:F1} MB, peak over the next 360 {peak / 1048576.0:F1} MB (+{rssGrowthMb:F1}); managed +{managedGrowthMb:F2} MB");
        Assert.IsTrue(rssGrowthMb < 40, $"resident memory grew {rssGrowthMb:F1} MB over 18 000 more images");
        Assert.IsTrue(managedGrowthMb < 8, $"managed memory grew {managedGrowthMb:F2} MB");
        // (Finalizers of earlier tests' tensors may lower the global count meanwhile; it must not grow.)
        Assert.IsTrue(Tensor.TotalCount <= tensorsBefore, $"every batch tensor and ring tensor is released: {tensorsBefore} before, {Tensor.TotalCount} after");
    }
}
