using System.Text.RegularExpressions;
using Mae.Cli;
using Mae.Cli.Commands;
using Mae.MLNet.Input;
using Mae.MLNet.Model;
using SkiaSharp;

namespace Mae.MLNet.Tests.Cli;

/// <summary>Issue 27: the ten things a first session with the tool ran into, each as the user meets it — the flags, the
/// exit code, the line on standard error, the files left behind. (Shares <see cref="MaeCliTest"/>'s images and run.)</summary>
public partial class MaeCliTest
{
    static string Images => Path.Combine(root, "images");
    static string ModelJson => Path.Combine(root, "model.json");

    /// <summary>A small pretrain command; <paramref name="more"/> adds flags or replaces the defaults' values.</summary>
    static string[] Pretrain(string outDir, params string[] more)
    {
        var args = new List<string> { "pretrain", "--images", Images, "--out", outDir };
        foreach (var (flag, value) in new[] { ("--model", ModelJson), ("--batch-size", "8"), ("--device", "cpu"), ("--recon-every", "0"), ("--num-workers", "1") })
            if (!more.Contains(flag)) args.AddRange([flag, value]);
        return [.. args, .. more];
    }

    static void AssertOneLine(string error) => Assert.AreEqual(1, error.Trim().Split('\n').Length, error);

    /// <summary>Item 1: <c>--model run/mae.json</c>, the config the tool writes beside its weights, builds that model (the
    /// run writes the identical file back); a misspelt key is an error naming it, never a silent default. Item 7: no
    /// <c>--warmup-epochs</c> with a short run is no error (a tenth of the epochs). Item 8: the start-up summary and a
    /// progress line per step with <c>--progress-seconds 0</c>.</summary>
    [TestMethod]
    public void ModelFlagReadsTheConfigTheToolWrites()
    {
        string written = Path.Combine(root, "run", "mae.json"), run = Path.Combine(root, "from-json");
        var (code, output, error) = Mae(["pretrain", "--images", Images, "--model", written, "--epochs", "1", "--batch-size", "8", "--device", "cpu",
            "--out", run, "--recon-every", "0", "--progress-seconds", "0"]);
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "pretrain: 32 images in");
        StringAssert.Contains(output, "model 32 px, patch 8, 3 channel(s), encoder 32×2 blocks (2 heads), decoder 16×1, norm-pix-loss off");
        StringAssert.Contains(output, "1 epochs × 4 steps of 8 images");
        StringAssert.Contains(output, "warm-up 0.1 epochs");
        StringAssert.Contains(output, "epoch 1/1 step 1/4  loss ");
        Assert.AreEqual(File.ReadAllText(written), File.ReadAllText(Path.Combine(run, "mae.json")));

        string misspelt = Path.Combine(root, "misspelt.json");
        File.WriteAllText(misspelt, """{"ImageSize":32,"PatchSize":8,"EmbedDim":32,"Dpeth":2,"NumHeads":2}""");
        (code, _, error) = Mae(Pretrain(Path.Combine(root, "never"), "--model", misspelt, "--epochs", "1"));
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "'Dpeth' is not a MaeConfig property");
        AssertOneLine(error);
    }

    /// <summary>Item 7: a warm-up longer than the run is refused by flag name, after the input checks (an empty folder is
    /// what is reported first). Item 10: a mistyped flag gets the nearest real one.</summary>
    [TestMethod]
    public void WarmUpAndTyposAreReportedInTheFlagsOwnNames()
    {
        var (code, _, error) = Mae(Pretrain(Path.Combine(root, "never"), "--epochs", "2", "--warmup-epochs", "5"));
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "--warmup-epochs (5) must not exceed --epochs (2)");
        Assert.IsFalse(error.Contains("WarmupEpochs"), error);
        AssertOneLine(error);

        string empty = Path.Combine(root, "empty-folder");
        Directory.CreateDirectory(empty);
        (code, _, error) = Mae(["pretrain", "--images", empty, "--epochs", "2", "--warmup-epochs", "5", "--out", Path.Combine(root, "never")]);
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "holds no image files");

        (code, _, error) = Mae(["pretrain", "--images", Images, "--epoch", "3", "--out", Path.Combine(root, "never")]);
        Assert.AreEqual(MaeCli.ExitUsage, code);
        StringAssert.Contains(error, "'--epoch' is not a flag of 'mae pretrain'; did you mean '--epochs'?");
    }

    /// <summary>Item 4: <c>--resume</c> with another <c>--batch-size</c> is refused before any step, naming both sizes
    /// (by the pre-trainer: the same check holds for any caller);
    /// <c>--resume</c> where there is no checkpoint says so and starts at the first epoch.</summary>
    [TestMethod]
    public void ResumeSaysWhatItDoesAndRefusesAnotherBatchSize()
    {
        string copy = Path.Combine(root, "resume-batch");
        Directory.CreateDirectory(copy);
        File.Copy(Path.Combine(root, "run", "checkpoint-0002.maeckpt"), Path.Combine(copy, "checkpoint-0002.maeckpt"));
        var (code, _, error) = Mae(Pretrain(copy, "--epochs", "3", "--resume", "--batch-size", "4"));
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "was written with 4 steps per epoch (batch size 8); this data and batch size (4) give 8");
        AssertOneLine(error);
        Assert.AreEqual(1, Directory.GetFiles(copy).Count(f => Path.GetFileName(f) != global::Mae.MLNet.Training.MaeRunFolderLock.FileName), "nothing written");

        // The pre-trainer's own check, for a caller without the tool: 32 images at batch 4 are 8 steps, not 4.
        var config = global::Mae.MLNet.Interop.MaeWeightFile.ReadConfig(ModelJson);
        var options = new global::Mae.MLNet.Pretraining.MaePretrainOptions { Epochs = 3, WarmupEpochs = 1, BatchSize = 4, Device = global::Mae.MLNet.Runtime.MaeDevice.Cpu, CheckpointDir = copy, Resume = true };
        using (var model = global::Mae.MLNet.Pretraining.MaePretrainer.CreateModel(config, options))
        {
            var files = MaeImageFileSource.FromFolder(Images, new MaeImageInputOptions { Augmentation = new MaeAugmentationOptions { OutputSize = 32 }, Workers = 1 });
            var e = Assert.ThrowsExactly<InvalidOperationException>(() => new global::Mae.MLNet.Pretraining.MaePretrainer(options).Train(model, files));
            StringAssert.Contains(e.Message, "was written with 4 steps per epoch (batch size 8); this data and batch size (4) give 8");
        }

        string fresh = Path.Combine(root, "resume-nothing");
        (code, var output, error) = Mae(Pretrain(fresh, "--epochs", "1", "--resume"));
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, $"resume: no checkpoint in '{fresh}' yet; starting from the first epoch");
        StringAssert.Contains(output, "pre-trained 1 epochs (4 steps)");
    }

    /// <summary>Issue 23 item 5: <c>--resume=require</c> with no checkpoint refuses before the folder is created, naming
    /// it, with exit code 5 (the library's <see cref="global::Mae.MLNet.Training.MaeTrainingOptions.RequireResume"/> the
    /// same, before any step); where one exists it goes on to the resume (here to the batch-size check of a resume).</summary>
    [TestMethod]
    public void ResumeRequireRefusesAnEmptyFolderAndResumesAFullOne()
    {
        string missing = Path.Combine(root, "require-nothing");
        var (code, output, error) = Mae(Pretrain(missing, "--epochs", "1", "--resume=require"));
        Assert.AreEqual(5, code, error);
        StringAssert.Contains(error, $"nothing to resume: '{missing}' holds no checkpoint");
        AssertOneLine(error);
        Assert.IsFalse(Directory.Exists(missing), "a refused run creates no folder");
        string ftMissing = Path.Combine(root, "require-finetune");
        (code, _, error) = Mae(["finetune", "--images", Images, "--weights", Path.Combine(root, "run", "mae.safetensors"), "--out", Path.Combine(root, "require.zip"),
            "--checkpoint-dir", ftMissing, "--resume=require", "--epochs", "1", "--batch-size", "8", "--device", "cpu"]);
        Assert.AreEqual(5, code, error);
        StringAssert.Contains(error, $"nothing to resume: '{ftMissing}' holds no checkpoint");
        Assert.IsFalse(Directory.Exists(ftMissing), "a refused run creates no folder");

        // A folder with a checkpoint: the run goes on to the resume (and reaches its batch-size check).
        string copy = Path.Combine(root, "require-batch");
        Directory.CreateDirectory(copy);
        File.Copy(Path.Combine(root, "run", "checkpoint-0002.maeckpt"), Path.Combine(copy, "checkpoint-0002.maeckpt"));
        (code, _, error) = Mae(Pretrain(copy, "--epochs", "3", "--resume=require", "--batch-size", "4"));
        Assert.AreEqual(MaeCli.ExitBadInput, code, error);
        StringAssert.Contains(error, "was written with 4 steps per epoch (batch size 8)");

        var config = global::Mae.MLNet.Interop.MaeWeightFile.ReadConfig(ModelJson);
        string empty = Path.Combine(root, "require-library");
        Directory.CreateDirectory(empty);
        var options = new global::Mae.MLNet.Pretraining.MaePretrainOptions
        {
            Epochs = 1, WarmupEpochs = 0, BatchSize = 8, Device = global::Mae.MLNet.Runtime.MaeDevice.Cpu, CheckpointDir = empty,
            Resume = true, RequireResume = true,
        };
        using var model = global::Mae.MLNet.Pretraining.MaePretrainer.CreateModel(config, options);
        var files = MaeImageFileSource.FromFolder(Images, new MaeImageInputOptions { Augmentation = new MaeAugmentationOptions { OutputSize = 32 }, Workers = 1 });
        var e = Assert.ThrowsExactly<global::Mae.MLNet.Training.MaeRunFolderException>(() => new global::Mae.MLNet.Pretraining.MaePretrainer(options).Train(model, files));
        Assert.AreEqual(global::Mae.MLNet.Training.MaeRunFolderException.Problem.NothingToResume, e.Reason);
        Assert.AreEqual(empty, e.Folder);
        Assert.AreEqual(0, Directory.GetFiles(empty, "*.maeckpt").Length, "no step was taken");
        Assert.ThrowsExactly<ArgumentException>(() => new global::Mae.MLNet.Pretraining.MaePretrainOptions { RequireResume = true, CheckpointDir = empty }.Validate());
    }

    sealed class CancelAt(string marker, CancellationTokenSource cancel) : StringWriter
    {
        public override void WriteLine(string? value)
        {
            base.WriteLine(value);
            if (value?.Contains(marker, StringComparison.Ordinal) == true) cancel.Cancel();
        }
    }

    /// <summary>Items 2 and 9: Ctrl+C (the token <see cref="MaeCli.Run"/> links its handler to) stops <c>mae finetune</c>
    /// after the step in progress with exit code 130, a checkpoint of that position named and no zip; <c>--resume</c>
    /// continues and leaves only the latest and the best epoch's checkpoints (the stop's position file removed). The
    /// run starts from a pre-training checkpoint given as <c>--weights</c>; progress lines come per step (item 8).</summary>
    [TestMethod]
    public void FinetuneStopsOnCtrlCAndResumesKeepingOnlyTheLatestAndBestCheckpoints()
    {
        string checkpoints = Path.Combine(root, "ft-checkpoints"), zip = Path.Combine(root, "ft-resumed.zip");
        string[] args =
        [
            "finetune", "--images", Images, "--val-images", Images, "--weights", Path.Combine(root, "run", "checkpoint-0002.maeckpt"), "--out", zip,
            "--epochs", "3", "--batch-size", "8", "--device", "cpu", "--checkpoint-dir", checkpoints, "--num-workers", "1", "--progress-seconds", "0",
        ];
        using var ctrlC = new CancellationTokenSource();
        var output = new CancelAt("epoch 2/3 step 2/4 ", ctrlC);
        var error = new StringWriter();
        int code = MaeCli.Run(args, output, error, ctrlC.Token);
        Assert.AreEqual(MaeCli.ExitCancelled, code, error.ToString());
        StringAssert.Contains(output.ToString(), "finetune: 32 images in 2 classes");
        StringAssert.Contains(output.ToString(), "epoch 1/3 step 1/4  loss ");
        string mid = Path.Combine(checkpoints, "finetune-0001-000002.maeft");
        Assert.AreEqual($"mae: Training stopped at epoch 1, step 2 of 4; checkpoint written: '{mid}'. Run the same command with --resume to continue from there.",
            error.ToString().Trim());
        Assert.IsTrue(File.Exists(mid));
        Assert.IsFalse(File.Exists(zip), "a stopped run writes no zip");

        var (resumedCode, resumed, resumedError) = Mae([.. args, "--resume"]);
        Assert.AreEqual(0, resumedCode, resumedError);
        StringAssert.Contains(resumed, $"resume: continuing from '{mid}'");
        Assert.IsTrue(File.Exists(zip));
        int best = int.Parse(Regex.Match(resumed, @"best validation accuracy .* after epoch (\d)").Groups[1].Value);
        var left = Directory.GetFiles(checkpoints).Select(Path.GetFileName).Where(f => f != global::Mae.MLNet.Training.MaeRunFolderLock.FileName).Order().ToArray();
        CollectionAssert.AreEquivalent(new[] { $"finetune-{best:D4}.maeft", "finetune-0003.maeft" }.Distinct().ToArray(), left, string.Join(", ", left));
    }

    /// <summary>Item 9: a pre-training checkpoint exports to the very weights file its run wrote at that epoch, and serves
    /// as <c>--weights</c> directly (the same features as that file).</summary>
    [TestMethod]
    public void CheckpointsExportToTheRunsWeightsAndServeAsWeights()
    {
        string checkpoint = Path.Combine(root, "run", "checkpoint-0002.maeckpt"), exported = Path.Combine(root, "exported.safetensors");
        var (code, _, error) = Mae(["export", "--weights", checkpoint, "--out", exported]);
        Assert.AreEqual(0, code, error);
        CollectionAssert.AreEqual(File.ReadAllBytes(Weights), File.ReadAllBytes(exported), "the checkpoint of the last epoch holds the run's final weights");

        string fromFile = Path.Combine(root, "features-file.csv"), fromCheckpoint = Path.Combine(root, "features-checkpoint.csv");
        Assert.AreEqual(0, Mae(["featurize", "--images", Images, "--weights", Weights, "--out", fromFile]).Code);
        (code, var output, error) = Mae(["featurize", "--images", Images, "--weights", checkpoint, "--out", fromCheckpoint, "--progress-seconds", "0"]);
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "32/32 images");
        CollectionAssert.AreEqual(File.ReadAllLines(fromFile), File.ReadAllLines(fromCheckpoint));

        // reconstruct reads the checkpoint once (MaePretrainCheckpoint.Load) and draws what the weights file draws.
        string drawnFromFile = Path.Combine(root, "drawn-file.png"), drawnFromCheckpoint = Path.Combine(root, "drawn-checkpoint.png");
        Assert.AreEqual(0, Mae(["reconstruct", "--images", Images, "--weights", Weights, "--out", drawnFromFile, "--count", "3"]).Code);
        (code, _, error) = Mae(["reconstruct", "--images", Images, "--weights", checkpoint, "--out", drawnFromCheckpoint, "--count", "3"]);
        Assert.AreEqual(0, code, error);
        CollectionAssert.AreEqual(File.ReadAllBytes(drawnFromFile), File.ReadAllBytes(drawnFromCheckpoint));
    }

    /// <summary>Item 3 (and issue 23's CLI part): a truncated JPEG and a text file posing as a PNG stop each command with
    /// one line naming the file (exit 2), and with <c>--skip-bad-files</c> pretrain (its picture reads every file),
    /// finetune, featurize and reconstruct leave them out and list them.</summary>
    [TestMethod]
    public void BadFilesAreNamedOrSkippedByEveryCommand()
    {
        string bad = Path.Combine(root, "bad-images");
        foreach (var c in new[] { "red", "blue" })
        {
            Directory.CreateDirectory(Path.Combine(bad, c));
            foreach (var f in new[] { "00.png", "01.jpg", "02.png" }) File.Copy(Path.Combine(Images, c, f), Path.Combine(bad, c, f));
        }
        string truncated = Path.Combine(bad, "red", "zz-truncated.jpg"), text = Path.Combine(bad, "blue", "zz-text.png");
        File.WriteAllBytes(truncated, File.ReadAllBytes(Path.Combine(Images, "red", "01.jpg"))[..300]);
        File.WriteAllText(text, "not an image");

        var (code, _, error) = Mae(["finetune", "--images", bad, "--weights", Weights, "--out", Path.Combine(root, "bad.zip"), "--epochs", "1",
            "--batch-size", "2", "--device", "cpu"]);
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        Assert.IsTrue(error.Contains(truncated) || error.Contains(text), error);
        AssertOneLine(error);

        string[] Skipped(string output) => [.. output.Split('\n').Where(l => l.StartsWith("skipped ", StringComparison.Ordinal)).Select(l => l.Split(':')[0]["skipped ".Length..]).Order()];
        string[] both = [.. new[] { truncated, text }.Order()];
        (code, var output, error) = Mae(["finetune", "--images", bad, "--weights", Weights, "--out", Path.Combine(root, "bad.zip"), "--epochs", "1",
            "--batch-size", "2", "--device", "cpu", "--skip-bad-files"]);
        Assert.AreEqual(0, code, error);
        CollectionAssert.AreEqual(both, Skipped(output), output);

        string csv = Path.Combine(root, "bad-features.csv");
        (code, output, error) = Mae(["featurize", "--images", bad, "--weights", Weights, "--out", csv, "--skip-bad-files"]);
        Assert.AreEqual(0, code, error);
        CollectionAssert.AreEqual(both, Skipped(output), output);
        Assert.AreEqual(1 + 6, File.ReadAllLines(csv).Length, "a header and the six good images");
        Assert.IsFalse(File.ReadAllText(csv).Contains("zz-"));

        (code, output, error) = Mae(["reconstruct", "--images", bad, "--weights", Weights, "--out", Path.Combine(root, "bad.png"), "--count", "8", "--skip-bad-files"]);
        Assert.AreEqual(0, code, error);
        CollectionAssert.AreEqual(both, Skipped(output), output);

        // Eight files: the picture of eight reads every one, the bad ones included.
        (code, output, error) = Mae(["pretrain", "--images", bad, "--model", ModelJson, "--epochs", "1", "--batch-size", "2", "--device", "cpu",
            "--out", Path.Combine(root, "bad-run"), "--recon-every", "1", "--num-workers", "1", "--skip-bad-files"]);
        Assert.AreEqual(0, code, error);
        CollectionAssert.AreEqual(both, Skipped(output), output);
        StringAssert.Contains(output, "reconstructions: ");
    }

    /// <summary>Issue 23's CLI part: an output that is an input image, the image folder itself or a folder is refused
    /// before any work (exit 2, the image untouched); a file system that refuses to write ends in one line, exit 4.</summary>
    [TestMethod]
    public void OutputsNeverOverwriteInputsAndFileSystemRefusalsAreOneLine()
    {
        string image = Path.Combine(Images, "red", "00.png");
        var before = File.ReadAllBytes(image);
        var (code, _, error) = Mae(["reconstruct", "--images", Images, "--weights", Weights, "--out", image]);
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "is one of the input images");
        CollectionAssert.AreEqual(before, File.ReadAllBytes(image));

        (code, _, error) = Mae(Pretrain(Images, "--epochs", "1"));
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "is the --images folder");

        string folder = Path.Combine(root, "a-folder.csv");
        Directory.CreateDirectory(folder);
        (code, _, error) = Mae(["featurize", "--images", Images, "--weights", Weights, "--out", folder]);
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "is a folder");

        if (!OperatingSystem.IsLinux()) return;
        // /proc refuses new files even to root, as a read-only mount does.
        (code, _, error) = Mae(["featurize", "--images", Images, "--weights", Weights, "--out", "/proc/mae-cli-test.csv"]);
        Assert.AreEqual(MaeCli.ExitFileSystem, code, error);
        AssertOneLine(error);
        StringAssert.Contains(error, "/proc/");
    }

    /// <summary>Issue 23: a sub-folder that may not be listed ends <c>mae pretrain</c> in one line naming it, exit 4 (the file
    /// system refused, as docs/cli.md's table says). Mode 000
    /// does not stop root (the tests run as root in CI), so as root the command runs in a child process stripped of
    /// root's capabilities by util-linux <c>setpriv</c> (no CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH after exec), where the
    /// mode stops it as it stops any user; a child that could still list the folder would train, and the test fails.</summary>
    [TestMethod]
    public void AnUnreadableSubFolderEndsTheCommandInOneLineNamingIt()
    {
        if (!OperatingSystem.IsLinux()) { Assert.Inconclusive("folder modes and setpriv are Linux's."); return; }
        string[] wrapper = [];
        if (Environment.IsPrivilegedProcess)
        {
            string? setpriv = new[] { "/usr/bin/setpriv", "/bin/setpriv" }.FirstOrDefault(File.Exists);
            if (setpriv is null)
                Assert.Inconclusive("running as root, whom mode 000 does not stop, and util-linux setpriv (to run the command without root's capabilities) is missing.");
            wrapper = [setpriv!, "--inh-caps=-all", "--bounding-set=-all"];
        }
        string images = Path.Combine(root, "locked-images"), locked = Path.Combine(images, "zz-locked");
        Directory.CreateDirectory(locked);
        foreach (var f in Directory.GetFiles(Path.Combine(Images, "red"))) File.Copy(f, Path.Combine(images, Path.GetFileName(f)));
        File.Copy(Path.Combine(Images, "blue", "00.png"), Path.Combine(locked, "00.png"));
        File.SetUnixFileMode(locked, UnixFileMode.None);
        try
        {
            var result = Training.Distributed.MpiJob.StartCli(0, ["pretrain", "--images", images, "--out", Path.Combine(root, "locked-run"), "--model", ModelJson,
                "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--recon-every", "0"], wrapper: wrapper).Wait(120_000);
            Assert.AreEqual(MaeCli.ExitFileSystem, result.ExitCode, result.Stdout + result.Stderr);
            AssertOneLine(result.Stderr);
            StringAssert.Contains(result.Stderr, locked);
            StringAssert.Contains(result.Stderr, "cannot be listed");
        }
        finally { File.SetUnixFileMode(locked, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute); }
    }

    /// <summary>Item 5: colour files for a grey model are turned into PIL's luma ("L" = R·299/1000 + G·587/1000 +
    /// B·114/1000, rounded) instead of failing to decode; a grey model pre-trains on the colour folder.</summary>
    [TestMethod]
    public void ColourFilesFeedAGreyModelAsPilLuma()
    {
        string png = Path.Combine(root, "orange.png");
        using (var bitmap = new SKBitmap(8, 8))
        {
            bitmap.Erase(new SKColor(200, 100, 50));
            using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(png, data.ToArray());
        }
        var source = MaeImageFileSource.FromPaths([png], new MaeImageInputOptions
        {
            Augmentation = new MaeAugmentationOptions { OutputSize = 8, Channels = 1, Normalization = PixelNormalization.Identity(1) },
        });
        using var x = source.Batches(new MaeEpochPlan { BatchSize = 1, Training = false }).Single();
        // PIL: (200·19595 + 100·38470 + 50·7471 + 2^15) >> 16 = 124.
        Assert.IsTrue(x.data<float>().ToArray().All(v => v == 124 / 255f), string.Join(", ", x.data<float>().ToArray().Take(4)));

        string grey = Path.Combine(root, "grey.json");
        File.WriteAllText(grey, """{"ImageSize":32,"PatchSize":8,"InChannels":1,"EmbedDim":32,"Depth":1,"NumHeads":2,"DecoderEmbedDim":16,"DecoderDepth":1,"DecoderNumHeads":2}""");
        var (code, _, error) = Mae(Pretrain(Path.Combine(root, "grey-run"), "--model", grey, "--epochs", "1"));
        Assert.AreEqual(0, code, error);
    }

    /// <summary>Item 10: the reconstruction picture's images are spread evenly over the sorted files (a class-per-folder
    /// set shows several classes), not the first eight.</summary>
    [TestMethod]
    public void PicturesSpreadOverTheFolder()
    {
        CollectionAssert.AreEqual(new[] { 0, 4, 8, 12, 16, 20, 24, 28 }, ReconstructCommand.Spread(32, 8));
        CollectionAssert.AreEqual(new[] { 0, 1, 2, 3, 4 }, ReconstructCommand.Spread(5, 8));
    }
}
