using Mae.MLNet.Tests.Training;

namespace Mae.MLNet.Tests.Training.Distributed;

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
        Assert.AreEqual(1 + 2 * 4, Mae.MLNet.Tests.Pretraining.PretrainerTest.ReadRecords(File.ReadAllBytes(events[0])).Count);

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

    /// <summary>Fine-tuning with random crops and flips, mixup / cutmix and drop path, all drawn from libtorch's
    /// generator: keyed per micro-batch (seed, epoch, micro-batch k·W + r), so the ranks draw different streams and
    /// 2 ranks still equal one process accumulating their batches, as in pre-training; layer-decay groups included.</summary>
    [TestMethod]
    public void FineTuningOnTwoRanksEqualsOneProcessAccumulatingTheirBatches()
    {
        using var dir = new TempDir();
        string acc = dir.File("acc"), two = dir.File("two");
        MpiJob.RunOk(0, Args(acc, "fp32", "task=finetune", "augment", "batch=2", "accum=2"));
        var job = MpiJob.RunOk(2, Args(two, "fp32", "task=finetune", "augment", "batch=4"));
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

    /// <summary>
    /// Other launchers' environments with Open MPI underneath: each rank's Open MPI variables are removed and replaced
    /// by a Slurm step's (srun: <c>SLURM_STEP_NUM_TASKS</c>, <c>SLURM_PROCID</c>, <c>SLURM_LOCALID</c>) or left to PMIx
    /// alone (<c>PMIX_RANK</c>); the ranks still find each other through MPI and train as 2 ranks. srun's variables
    /// in a plain process (srun without PMIx: MPI forms a world of one) are refused, never trained as "rank 0 of 1".
    /// </summary>
    [TestMethod]
    [DataRow("slurm")]
    [DataRow("pmix")]
    public void SrunAndPmixLaunchesFormTheJobAndAWorldOfOneIsRefused(string launcher)
    {
        using var dir = new TempDir();
        const string dropOmpi = "exec env -u OMPI_COMM_WORLD_SIZE -u OMPI_COMM_WORLD_RANK -u OMPI_COMM_WORLD_LOCAL_RANK \"$@\"";
        string script = launcher == "slurm"
            ? "SLURM_STEP_NUM_TASKS=$OMPI_COMM_WORLD_SIZE SLURM_PROCID=$OMPI_COMM_WORLD_RANK SLURM_LOCALID=$OMPI_COMM_WORLD_LOCAL_RANK " + dropOmpi
            : dropOmpi;
        var job = MpiJob.Run(2, new[] { $"out={dir.File("ok")}", "epochs=1", "images=40", "batch=4" }, wrapper: new[] { "sh", "-c", script, "sh" });
        Assert.AreEqual(0, job.ExitCode, job.Stdout + job.Stderr);
        StringAssert.Contains(job.Stdout, "RANK 1/2 MPI steps=10");
        StringAssert.Contains(job.Stdout, "RANK 0/2 MPI steps=10");
        if (launcher != "slurm") return;

        var env = new Dictionary<string, string> { ["SLURM_STEP_NUM_TASKS"] = "2", ["SLURM_PROCID"] = "1", ["SLURM_LOCALID"] = "1" };
        var alone = MpiJob.Run(0, new[] { $"out={dir.File("alone")}", "epochs=1", "images=40", "batch=4" }, env: env);
        Assert.AreNotEqual(0, alone.ExitCode, alone.Stdout + alone.Stderr);
        StringAssert.Contains(alone.Stderr, "The launcher (Slurm) announced rank 1 of 2, but MPI formed rank 0 of 1");
        Assert.IsFalse(File.Exists(dir.File("alone")), "no training may run");
    }

    /// <summary>A rank that fails alone (an exception on rank 1 only, a bad image) reports and ends every rank at
    /// once (MPI_Abort), long before the collective timeout, set to 300 s here, could end rank 0's wait.</summary>
    [TestMethod]
    public void ARankThatFailsAloneEndsEveryRank()
    {
        using var dir = new TempDir();
        var env = new Dictionary<string, string> { ["MAE_COLLECTIVE_TIMEOUT_S"] = "300" };
        var r = MpiJob.Run(2, Args(dir.File("throw"), "fp32", "batch=4", "fault=throw:1:5"), timeoutMs: 200_000, env);
        Assert.AreNotEqual(0, r.ExitCode, r.Stdout + r.Stderr);
        StringAssert.Contains(r.Stderr, "rank 1 of 2: training failed on this rank; ending every rank of the job.");
        StringAssert.Contains(r.Stderr, "FAULT: this rank cannot decode its image");
        Assert.IsFalse(r.Stderr.Contains("longer than the collective timeout", StringComparison.Ordinal), r.Stderr);
        Assert.IsFalse(File.Exists(dir.File("throw")), "rank 0 must not finish the run");
        Console.WriteLine($"job ended after {r.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>
    /// The `mae pretrain` command line, world-size independent end to end: one process with batch 2 × AccumIter 2, and
    /// <c>mpirun -np 2</c> with batch 4 stopped by a SIGTERM to rank 1 alone — both ranks stop at the same step, rank 0
    /// writes the checkpoint of that position — then resumed with --resume, write the same mae.safetensors, byte for byte.
    /// The signal lands mid-run by construction, not by timing: rank 0 writes a progress line per step into a pipe of
    /// one page that the test stops reading once epoch 2 is done, so the job blocks long before its end (its remaining
    /// lines are over twice a page) until the test reads on — after rank 1 has said it got the signal.
    /// libtorch's CPU reductions split their sums by the intra-op thread count, so both sides run one thread
    /// (OMP_NUM_THREADS=1): at another count the files differ in the last bits (≈ 1e-8), as any two thread counts do.
    /// </summary>
    [TestMethod]
    public void CliSigtermToOneRankCheckpointsAndTheResumedJobEqualsOneProcess()
    {
        using var dir = new TempDir();
        string images = dir.File("images"), model = dir.File("model.json"), one = dir.File("one"), two = dir.File("two");
        Mae.MLNet.Tests.Input.InputTestUtil.WriteJpegs(images, 16);
        File.WriteAllText(model,
            """{"ImageSize":32,"PatchSize":8,"InChannels":3,"EmbedDim":32,"Depth":2,"NumHeads":2,"DecoderEmbedDim":16,"DecoderDepth":1,"DecoderNumHeads":2}""");
        string[] Pretrain(string output, int batch, int accum, params string[] more) => new[]
        {
            "pretrain", "--images", images, "--model", model, "--epochs", "30", "--warmup-epochs", "2", "--batch-size", $"{batch}",
            "--accum-iter", $"{accum}", "--device", "cpu", "--num-workers", "1", "--recon-every", "0", "--checkpoint-every", "100", "--out", output,
        }.Concat(more).ToArray();

        var oneThread = new Dictionary<string, string> { ["OMP_NUM_THREADS"] = "1" };
        using var rank0 = new PipedStdout(dir.File("rank0.stdout"));
        var job = MpiJob.StartCli(2, Pretrain(two, 4, 1, "--progress-seconds", "0"), oneThread, rank0.Wrapper);
        rank0.Open(job);
        // Rank 0's line at the end of epoch 2 (of 30) says both ranks are training; then the pipe is left to fill.
        Assert.IsTrue(rank0.ReadUntil("epoch 2/30  last-step"), "the job ended before its second epoch:\n" + rank0.Text + job.Stderr);
        var pids = job.RankPids();
        Assert.IsTrue(pids.ContainsKey(1), $"rank 1's process among mpirun's children: {string.Join(", ", pids)}");
        Assert.AreEqual(0, kill(pids[1], 15 /* SIGTERM */));
        Assert.IsTrue(job.WaitForError("SIGTERM: stopping at the next step boundary", 120_000), job.Stderr);
        var drained = rank0.DrainAsync();
        var stopped = job.Wait(120_000);
        drained.Wait();
        Assert.AreNotEqual(0, stopped.ExitCode, "a stopped job is not a finished one");
        StringAssert.Contains(stopped.Stderr, "SIGTERM: stopping at the next step boundary");
        StringAssert.Contains(stopped.Stderr, "checkpoint written:");
        Assert.IsFalse(File.Exists(Path.Combine(two, "mae.safetensors")), "the run must stop before its end");
        var written = Directory.GetFiles(two, "checkpoint-*.maeckpt");
        Assert.AreEqual(1, written.Length, string.Join(", ", written));
        Console.WriteLine($"stopped at {Path.GetFileName(written[0])} (epochs done, steps into the next) of 30 × 4 steps");
        // Both ranks stopped at the same step: each names the same checkpoint.
        Assert.AreEqual(2, System.Text.RegularExpressions.Regex.Matches(stopped.Stderr, System.Text.RegularExpressions.Regex.Escape(Path.GetFileName(written[0]))).Count, stopped.Stderr);

        var resumed = MpiJob.StartCli(2, Pretrain(two, 4, 1, "--resume"), oneThread).Wait(240_000);
        Assert.AreEqual(0, resumed.ExitCode, resumed.Stdout + resumed.Stderr);
        StringAssert.Contains(resumed.Stdout, $"resumed from {Path.GetFileName(written[0])}");
        var single = MpiJob.StartCli(0, Pretrain(one, 2, 2), oneThread).Wait(240_000);
        Assert.AreEqual(0, single.ExitCode, single.Stdout + single.Stderr);
        CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(one, "mae.safetensors")), File.ReadAllBytes(Path.Combine(two, "mae.safetensors")),
            "1 process accumulating 2 batches vs 2 ranks stopped by SIGTERM and resumed");
    }

    /// <summary><c>mpirun -np 2 mae finetune --batch-size 4</c> shards each epoch (no duplicate trainings): rank 0 alone
    /// reports and writes the zip, whose contents equal those of one process with batch 2 × <c>--accum-iter 2</c>.</summary>
    [TestMethod]
    public void CliFinetuneOnTwoRanksEqualsOneProcessAccumulating()
    {
        using var dir = new TempDir();
        string images = dir.File("images"), weights = dir.File("mae.safetensors");
        Mae.MLNet.Tests.Input.InputTestUtil.WriteJpegs(Path.Combine(images, "cat"), 8);
        Mae.MLNet.Tests.Input.InputTestUtil.WriteJpegs(Path.Combine(images, "dog"), 8, seed0: 100);
        var config = Mae.MLNet.TrainHost.TinyRun.Config with { ImageSize = 32 };
        using (var mae = Mae.MLNet.Pretraining.MaePretrainer.CreateModel(config, Mae.MLNet.TrainHost.TinyRun.Options(1)))
            Mae.MLNet.Interop.MaeWeightFile.Save(mae, weights);
        string[] Finetune(string zip, int batch, int accum) => new[]
        {
            "finetune", "--images", images, "--weights", weights, "--num-heads", $"{config.NumHeads},{config.DecoderNumHeads}", "--epochs", "2",
            "--warmup-epochs", "1", "--batch-size", $"{batch}", "--accum-iter", $"{accum}", "--device", "cpu", "--out", zip,
        };
        var oneThread = new Dictionary<string, string> { ["OMP_NUM_THREADS"] = "1" };
        var two = MpiJob.StartCli(2, Finetune(dir.File("two.zip"), 4, 1), oneThread).Wait(240_000);
        Assert.AreEqual(0, two.ExitCode, two.Stdout + two.Stderr);
        Assert.AreEqual(2, System.Text.RegularExpressions.Regex.Matches(two.Stdout, "epoch [12]/2 ").Count, two.Stdout);
        Assert.AreEqual(1, System.Text.RegularExpressions.Regex.Matches(two.Stdout, "wrote ").Count, two.Stdout);
        var one = MpiJob.StartCli(0, Finetune(dir.File("one.zip"), 2, 2), oneThread).Wait(240_000);
        Assert.AreEqual(0, one.ExitCode, one.Stdout + one.Stderr);
        AssertSameZips(dir.File("one.zip"), dir.File("two.zip"));
    }

    /// <summary>FCMAE (ConvNeXt V2) pre-training takes the same data-parallel path as the ViT MAE: <c>mpirun -np 2 mae
    /// pretrain --model convnextv2-atto --batch-size 4</c> writes the same <c>convnextv2.safetensors</c>, byte for byte,
    /// as one process with batch 2 × <c>--accum-iter 2</c> (one intra-op thread each, as above).</summary>
    [TestMethod]
    public void CliFcmaeOnTwoRanksEqualsOneProcessAccumulating()
    {
        using var dir = new TempDir();
        string images = dir.File("images");
        Mae.MLNet.Tests.Input.InputTestUtil.WriteJpegs(images, 8, minSide: 64, maxSide: 96);
        string[] Pretrain(string output, int batch, int accum) => new[]
        {
            "pretrain", "--images", images, "--model", "convnextv2-atto", "--input-size", "64", "--epochs", "2", "--warmup-epochs", "1",
            "--batch-size", $"{batch}", "--accum-iter", $"{accum}", "--device", "cpu", "--num-workers", "1", "--recon-every", "0", "--out", output,
        };
        var oneThread = new Dictionary<string, string> { ["OMP_NUM_THREADS"] = "1" };
        var two = MpiJob.StartCli(2, Pretrain(dir.File("two"), 4, 1), oneThread).Wait(240_000);
        Assert.AreEqual(0, two.ExitCode, two.Stdout + two.Stderr);
        StringAssert.Contains(two.Stdout, "pre-trained 2 epochs (4 steps");
        var one = MpiJob.StartCli(0, Pretrain(dir.File("one"), 2, 2), oneThread).Wait(240_000);
        Assert.AreEqual(0, one.ExitCode, one.Stdout + one.Stderr);
        StringAssert.Contains(one.Stdout, "pre-trained 2 epochs (8 steps");
        byte[] a = File.ReadAllBytes(Path.Combine(dir.File("one"), "convnextv2.safetensors")), b = File.ReadAllBytes(Path.Combine(dir.File("two"), "convnextv2.safetensors"));
        CollectionAssert.AreEqual(a, b, "1 process accumulating 2 batches vs 2 ranks");
    }

    /// <summary>ConvNeXt V2 fine-tuning too: <c>mpirun -np 2 mae finetune --from-scratch convnextv2-atto --batch-size 4</c>
    /// writes a zip whose every entry equals that of one process with batch 2 × <c>--accum-iter 2</c>.</summary>
    [TestMethod]
    public void CliConvNextFinetuneOnTwoRanksEqualsOneProcessAccumulating()
    {
        using var dir = new TempDir();
        string images = dir.File("images");
        Mae.MLNet.Tests.Input.InputTestUtil.WriteJpegs(Path.Combine(images, "cat"), 4, minSide: 64, maxSide: 96);
        Mae.MLNet.Tests.Input.InputTestUtil.WriteJpegs(Path.Combine(images, "dog"), 4, seed0: 100, minSide: 64, maxSide: 96);
        string[] Finetune(string zip, int batch, int accum) => new[]
        {
            "finetune", "--images", images, "--from-scratch", "convnextv2-atto", "--input-size", "64", "--epochs", "2",
            "--warmup-epochs", "1", "--batch-size", $"{batch}", "--accum-iter", $"{accum}", "--device", "cpu", "--out", zip,
        };
        var oneThread = new Dictionary<string, string> { ["OMP_NUM_THREADS"] = "1" };
        var two = MpiJob.StartCli(2, Finetune(dir.File("two.zip"), 4, 1), oneThread).Wait(240_000);
        Assert.AreEqual(0, two.ExitCode, two.Stdout + two.Stderr);
        var one = MpiJob.StartCli(0, Finetune(dir.File("one.zip"), 2, 2), oneThread).Wait(240_000);
        Assert.AreEqual(0, one.ExitCode, one.Stdout + one.Stderr);
        AssertSameZips(dir.File("one.zip"), dir.File("two.zip"));
    }

    /// <summary>The two zips hold the same entries, byte for byte.</summary>
    static void AssertSameZips(string one, string two)
    {
        using var a = System.IO.Compression.ZipFile.OpenRead(one);
        using var b = System.IO.Compression.ZipFile.OpenRead(two);
        CollectionAssert.AreEqual(a.Entries.Select(e => e.FullName).ToList(), b.Entries.Select(e => e.FullName).ToList());
        foreach (var e in a.Entries)
            CollectionAssert.AreEqual(ReadAll(e), ReadAll(b.GetEntry(e.FullName)!), $"zip entry {e.FullName}");
    }

    static byte[] ReadAll(System.IO.Compression.ZipArchiveEntry entry)
    {
        using var stream = entry.Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int signal);

    /// <summary>Rank 0's standard output through a FIFO of one page (the least a pipe holds) that the test reads when
    /// it chooses: a rank that writes more than that while the test is not reading blocks in the write.</summary>
    sealed class PipedStdout : IDisposable
    {
        const int SetPipeSize = 1031;   // F_SETPIPE_SZ
        readonly string path;
        readonly System.Text.StringBuilder text = new();
        FileStream? stream;
        StreamReader? reader;

        public PipedStdout(string path)
        {
            this.path = path;
            Assert.AreEqual(0, mkfifo(path, 0x180 /* 0600 */), $"mkfifo {path}");
        }

        /// <summary>Between mpirun and dotnet: rank 0's output goes to the FIFO, the other ranks' stay with mpirun.</summary>
        public string[] Wrapper => ["sh", "-c", $"if [ \"$OMPI_COMM_WORLD_RANK\" = 0 ]; then exec \"$@\" > '{path}'; else exec \"$@\"; fi", "sh"];

        public string Text { get { lock (text) return text.ToString(); } }

        /// <summary>Opens the read end (which waits for rank 0 to open the write end; a job that ends first is
        /// answered by opening it here) and shrinks the pipe to one page.</summary>
        public void Open(MpiJob.Running job)
        {
            var open = Task.Run(() => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1));
            while (!open.Wait(1000))
                if (job.Process.HasExited) new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1).Dispose();
            stream = open.Result;
            int size = fcntl((int)stream.SafeFileHandle.DangerousGetHandle(), SetPipeSize, 4096);
            Assert.AreEqual(4096, size, "the pipe must hold one page only");
            reader = new StreamReader(stream);
        }

        /// <summary>Reads lines until one contains <paramref name="marker"/> (true) or the output ends (false); without a
        /// marker, to the end (rank 0 has exited).</summary>
        public bool ReadUntil(string? marker)
        {
            while (reader!.ReadLine() is { } line)
            {
                lock (text) text.AppendLine(line);
                if (marker is not null && line.Contains(marker, StringComparison.Ordinal)) return true;
            }
            return false;
        }

        public Task DrainAsync() => Task.Run(() => ReadUntil(null));

        public void Dispose()
        {
            reader?.Dispose();
            stream?.Dispose();
        }

        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
        static extern int mkfifo(string path, uint mode);

        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
        static extern int fcntl(int fd, int cmd, int arg);
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
