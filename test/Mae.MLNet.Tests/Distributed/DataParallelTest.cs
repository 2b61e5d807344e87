using Mae.MLNet.Tests.Training;

namespace Mae.MLNet.Tests.Distributed;

/// <summary>
/// Data-parallel pre-training over Open MPI, run as real <c>mpirun -np 2</c> jobs of the training host: 2 ranks with
/// batch B/2 each against one process, resume across world sizes, and a dead or hung rank. The tiny MAE, 40 images,
/// global batch 4, 2 epochs = 20 optimizer steps.
/// </summary>
[TestClass]
public class DataParallelTest
{
    const double Tolerance = 1e-5;

    static string[] Args(string output, string precision, params string[] more)
        => new[] { $"out={output}", "epochs=2", "images=40", $"precision={precision}" }.Concat(more).ToArray();

    /// <summary>
    /// Against one process with the same global batch B = 4: the forward pass at equal weights agrees to float
    /// rounding, and so do losses and weights after 20 steps in fp32 — except the attention key biases. Their
    /// gradient is zero in exact arithmetic (softmax is invariant to a shift of every key by the same bias), so what
    /// they get is rounding noise, which AdamW's m/√v turns into lr-sized steps of arbitrary sign on either side;
    /// they are compared, exactly, in <see cref="TwoRanksEqualOneProcessAccumulatingTheirBatches"/>.
    /// In bf16 each rank rounds its partial weight-gradient sum to bf16 before the fp32 all-reduce, as autocast + DDP
    /// does, where one process rounds the sum over all B images: only the first steps' losses agree to 1e-5.
    /// </summary>
    [TestMethod]
    [DataRow("fp32")]
    [DataRow("bf16")]
    public void TwoRanksWithHalfTheBatchEqualOneProcess(string precision)
    {
        using var dir = new TempDir();
        string one = dir.File("one"), two = dir.File("two");
        MpiJob.RunOk(0, Args(one, precision, "batch=4", $"metrics={one}.jsonl"));
        var job = MpiJob.RunOk(2, Args(two, precision, "batch=4", $"metrics={two}.jsonl", $"tensorboard={two}.tb"));
        StringAssert.Contains(job.Stdout, "RANK 1/2 MPI steps=20");
        // Rank 0 alone writes the metrics (one line per report, as one process does) and the TensorBoard events.
        var lines = File.ReadAllLines($"{two}.jsonl");
        Assert.AreEqual(File.ReadAllLines($"{one}.jsonl").Length, lines.Length, string.Join("\n", lines));
        CollectionAssert.AreEqual(new long[] { 5, 10, 15, 20 }, lines.Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("global_step").GetInt64()).ToArray());
        var events = Directory.GetFiles($"{two}.tb", "events.out.tfevents.*");
        Assert.AreEqual(1, events.Length, "one TensorBoard event file (rank 0's)");
        // A file-version event, then train_loss and lr at each of the 4 reports: one writer, whole records.
        Assert.AreEqual(1 + 2 * 4, PretrainerTest.ReadRecords(File.ReadAllBytes(events[0])).Count);

        var expected = MpiJob.Losses(one);
        var actual = MpiJob.Losses(two);
        Assert.AreEqual(20, expected.Length);
        Assert.AreEqual(20, actual.Length);
        int exactSteps = precision == "fp32" ? 20 : 2; // bf16: steps 1–2 run at (near-)equal weights (warmup lr 0, then tiny)
        for (int i = 0; i < 20; i++)
            Assert.AreEqual(expected[i], actual[i], (i < exactSteps ? Tolerance : 2e-3) * Math.Abs(expected[i]), $"loss of step {i} ({precision})");

        // Every rank ends with the same weights, bit for bit (same averaged gradient, same AdamW step).
        CollectionAssert.AreEqual(MpiJob.Weights(two, 0), MpiJob.Weights(two, 1), "rank 1's weights differ from rank 0's");
        if (precision == "fp32") AssertWeightsClose(one, two, Tolerance, skipKeyBias: true);
    }

    /// <summary>Rank r's batch at step k is micro-batch 2k + r of one process with batch B/2 and AccumIter 2, so the
    /// gradient that process accumulates in fp32 is the ranks' all-reduced one: weights agree exactly, in fp32 and
    /// in bf16 (same per-half bf16 rounding), key biases included; the ranks' loss is the mean of the two
    /// micro-batch losses.</summary>
    [TestMethod]
    [DataRow("fp32")]
    [DataRow("bf16")]
    public void TwoRanksEqualOneProcessAccumulatingTheirBatches(string precision)
    {
        using var dir = new TempDir();
        string acc = dir.File("acc"), two = dir.File("two");
        MpiJob.RunOk(0, Args(acc, precision, "batch=2", "accum=2"));
        MpiJob.RunOk(2, Args(two, precision, "batch=4"));
        AssertRankLossesAverageMicroBatches(acc, two, steps: 20);
        AssertWeightsClose(acc, two, Tolerance, skipKeyBias: false);
    }

    /// <summary>Each step's loss of the 2-rank run in <paramref name="two"/> is the mean of the two micro-batch losses of
    /// the accumulating one-process run in <paramref name="acc"/>.</summary>
    static void AssertRankLossesAverageMicroBatches(string acc, string two, int steps)
    {
        var micro = MpiJob.Losses(acc);
        var ranks = MpiJob.Losses(two);
        Assert.AreEqual(2 * steps, micro.Length);
        Assert.AreEqual(steps, ranks.Length);
        for (int k = 0; k < steps; k++)
        {
            double mean = (micro[2 * k] + (double)micro[2 * k + 1]) / 2;
            Assert.AreEqual(mean, ranks[k], Tolerance * Math.Abs(mean), $"loss of step {k}");
        }
    }

    /// <summary>Pre-training on a folder of JPEGs (<see cref="Mae.MLNet.Input.MaeImageFileSource"/>: random crops and
    /// flips keyed by image index): 2 ranks reading their shards of the file order equal one process with batch B/2
    /// and AccumIter 2 — losses and weights, as with the in-memory source.</summary>
    [TestMethod]
    public void TwoRanksReadingAnImageFolderEqualOneProcessAccumulatingTheirBatches()
    {
        using var dir = new TempDir();
        string folder = dir.File("images"), acc = dir.File("acc"), two = dir.File("two");
        Mae.MLNet.Tests.Input.InputTestUtil.WriteJpegs(folder, 24);
        MpiJob.RunOk(0, $"out={acc}", "epochs=2", $"folder={folder}", "batch=2", "accum=2");
        var job = MpiJob.RunOk(2, $"out={two}", "epochs=2", $"folder={folder}", "batch=4");
        StringAssert.Contains(job.Stdout, "RANK 1/2 MPI steps=12");   // 24 images / 2 ranks / 2 per rank = 6 steps per epoch
        AssertRankLossesAverageMicroBatches(acc, two, steps: 12);
        CollectionAssert.AreEqual(MpiJob.Weights(two, 0), MpiJob.Weights(two, 1), "rank 1's weights differ from rank 0's");
        // Same images, crops and masks in the same micro-batches: the same fp32 gradient sum, the same weights bit for bit.
        CollectionAssert.AreEqual(MpiJob.Weights(acc), MpiJob.Weights(two, 0), "2 ranks vs one process with AccumIter 2: weights");
    }

    /// <summary>Fine-tuning (no random augmentation, mixup or drop path, which draw per rank): 2 ranks equal one
    /// process accumulating their batches, as in pre-training; layer-decay groups and label smoothing included.</summary>
    [TestMethod]
    public void FineTuningOnTwoRanksEqualsOneProcessAccumulatingTheirBatches()
    {
        using var dir = new TempDir();
        string acc = dir.File("acc"), two = dir.File("two");
        MpiJob.RunOk(0, Args(acc, "fp32", "task=finetune", "batch=2", "accum=2"));
        var job = MpiJob.RunOk(2, Args(two, "fp32", "task=finetune", "batch=4"));
        StringAssert.Contains(job.Stdout, "RANK 1/2 MPI steps=20");
        AssertRankLossesAverageMicroBatches(acc, two, steps: 20);
        CollectionAssert.AreEqual(MpiJob.Weights(two, 0), MpiJob.Weights(two, 1), "rank 1's weights differ from rank 0's");
        AssertWeightsClose(acc, two, Tolerance, skipKeyBias: false);
    }

    /// <summary>A checkpoint written by 2 ranks resumes in 1 process and the reverse; the history, global step,
    /// schedule and data order continue, so both end where an uninterrupted 1-process run ends.</summary>
    [TestMethod]
    public void ResumesAcrossWorldSizes()
    {
        using var dir = new TempDir();
        string straight = dir.File("straight");
        MpiJob.RunOk(0, Args(straight, "fp32", "batch=4"));
        var expected = MpiJob.Losses(straight);

        foreach (var (first, second) in new[] { (2, 0), (0, 2) })
        {
            string ck = dir.File($"ck{first}{second}"), half = dir.File($"half{first}{second}"), rest = dir.File($"rest{first}{second}");
            var a = MpiJob.RunOk(first, $"out={half}", $"dir={ck}", "epochs=1", "images=40", "batch=4");
            Assert.IsTrue(File.Exists(Path.Combine(ck, "checkpoint-0001.maeckpt")), a.Stdout);
            var b = MpiJob.RunOk(second, $"out={rest}", $"dir={ck}", "epochs=2", "images=40", "batch=4", "resume");
            StringAssert.Contains(b.Stdout, "checkpoint-0001.maeckpt");
            StringAssert.Contains(b.Stdout, "steps=20");
            var actual = MpiJob.Losses(rest);
            Assert.AreEqual(expected.Length, actual.Length, $"{first}→{second} ranks: the history must hold all 20 steps");
            for (int i = 0; i < expected.Length; i++)
                Assert.AreEqual(expected[i], actual[i], Tolerance * Math.Abs(expected[i]), $"{first}→{second} ranks: loss of step {i}");
            AssertWeightsClose(straight, rest, Tolerance, skipKeyBias: true);
        }
    }

    [TestMethod]
    public void AKilledRankEndsTheJobWithAnError()
    {
        using var dir = new TempDir();
        var r = MpiJob.Run(2, Args(dir.File("die"), "fp32", "batch=4", "fault=die:1:5"), timeoutMs: 60_000);
        Assert.AreNotEqual(0, r.ExitCode, r.Stdout + r.Stderr);
        Assert.IsTrue(r.Elapsed < TimeSpan.FromSeconds(60), $"took {r.Elapsed}");
        StringAssert.Contains(r.Stderr + r.Stdout, "rank 1");
        Assert.IsFalse(File.Exists(dir.File("die")), "rank 0 must not finish the run");
    }

    [TestMethod]
    public void AHungRankEndsTheJobWithinTheCollectiveTimeout()
    {
        using var dir = new TempDir();
        var env = new Dictionary<string, string> { ["MAE_COLLECTIVE_TIMEOUT_S"] = "5" };
        var r = MpiJob.Run(2, Args(dir.File("hang"), "fp32", "batch=4", "fault=hang:1:5"), timeoutMs: 60_000, env);
        Assert.AreNotEqual(0, r.ExitCode, r.Stdout + r.Stderr);
        Assert.IsTrue(r.Elapsed < TimeSpan.FromSeconds(60), $"took {r.Elapsed}");
        // Rank 0 waits in the all-reduce for the hung rank 1 (on a very busy machine the 5 s can also run out earlier, in
        // a start-up collective, on either rank: the message then names that rank and operation).
        StringAssert.Matches(r.Stderr, new System.Text.RegularExpressions.Regex("rank [01] of 2 waited [0-9.]+ s in "));
        StringAssert.Contains(r.Stderr, "longer than the collective timeout of 5 s");
    }

    /// <summary>Relative L2 difference per parameter tensor ≤ <paramref name="tolerance"/>.</summary>
    static void AssertWeightsClose(string expectedOutput, string actualOutput, double tolerance, bool skipKeyBias)
    {
        var e = MpiJob.Weights(expectedOutput);
        var a = MpiJob.Weights(actualOutput);
        Assert.AreEqual(e.Length, a.Length);
        foreach (var (name, offset, count) in MpiJob.Names(expectedOutput))
        {
            double diff = 0, norm = 0;
            for (int i = 0; i < count; i++)
            {
                // qkv.bias is [q | k | v]: the middle third is the key bias (see the test's summary).
                if (skipKeyBias && name.EndsWith("attn.qkv.bias", StringComparison.Ordinal) && i >= count / 3 && i < 2 * count / 3) continue;
                double d = a[offset + i] - (double)e[offset + i];
                diff += d * d;
                norm += e[offset + i] * (double)e[offset + i];
            }
            double rel = Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), 1e-30);
            Assert.IsTrue(rel <= tolerance, $"{name}: relative difference {rel:E2} > {tolerance:E0}");
        }
    }
}
