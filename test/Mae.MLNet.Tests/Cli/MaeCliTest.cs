using Mae.Cli;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SkiaSharp;
using Mae.MLNet.Pretraining;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Cli;

/// <summary>The <c>mae</c> tool end to end, in process: each command on a small image folder, and bad flags / files
/// ending with one line and a non-zero exit code and nothing written.</summary>
[TestClass]
public partial class MaeCliTest
{
    static string root = "";

    [ClassInitialize]
    public static void MakeImages(TestContext _)
    {
        root = Path.Combine(Path.GetTempPath(), $"mae-cli-{Guid.NewGuid():N}");
        var rng = new Random(0);
        foreach (var (name, colour) in new[] { ("red", SKColors.Red), ("blue", SKColors.Blue) })
        {
            Directory.CreateDirectory(Path.Combine(root, "images", name));
            for (int i = 0; i < 16; i++)
            {
                using var bitmap = new SKBitmap(40 + rng.Next(30), 40 + rng.Next(30));
                for (int y = 0; y < bitmap.Height; y++)
                    for (int x = 0; x < bitmap.Width; x++)
                        bitmap.SetPixel(x, y, new SKColor((byte)Math.Clamp(colour.Red * 0.7 + rng.Next(70), 0, 255),
                            (byte)rng.Next(60), (byte)Math.Clamp(colour.Blue * 0.7 + rng.Next(70), 0, 255)));
                using var data = bitmap.Encode(i % 2 == 0 ? SKEncodedImageFormat.Png : SKEncodedImageFormat.Jpeg, 90);
                File.WriteAllBytes(Path.Combine(root, "images", name, $"{i:D2}{(i % 2 == 0 ? ".png" : ".jpg")}"), data.ToArray());
            }
        }
        File.WriteAllText(Path.Combine(root, "model.json"),
            """{"ImageSize":32,"PatchSize":8,"InChannels":3,"EmbedDim":32,"Depth":2,"NumHeads":2,"DecoderEmbedDim":16,"DecoderDepth":1,"DecoderNumHeads":2}""");
        var (code, output, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--model", Path.Combine(root, "model.json"),
            "--epochs", "2", "--warmup-epochs", "1", "--batch-size", "8", "--device", "cpu", "--out", Path.Combine(root, "run"), "--checkpoint-every", "1");
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "pre-trained 2 epochs (8 steps)");
        StringAssert.Contains(output, "reconstructions: ");   // the last epoch always draws (--recon-every 20 by default)
    }

    [ClassCleanup]
    public static void Cleanup() { if (Directory.Exists(root)) Directory.Delete(root, recursive: true); }

    static (int Code, string Output, string Error) Mae(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = MaeCli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    static string Weights => Path.Combine(root, "run", "mae.safetensors");

    [TestMethod]
    public void PretrainWritesCheckpointsMetricsAndWeightsAndResumes()
    {
        string run = Path.Combine(root, "run");
        Assert.IsTrue(File.Exists(Path.Combine(run, "checkpoint-0002.maeckpt")));
        Assert.AreEqual(8, File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Length, "one metrics line per step");
        using (var mae = MaeWeightFile.LoadMaskedAutoencoder(Weights)) Assert.AreEqual(32, mae.Config.EmbedDim);

        string copy = Path.Combine(root, "resumed");
        Directory.CreateDirectory(copy);
        File.Copy(Path.Combine(run, "checkpoint-0002.maeckpt"), Path.Combine(copy, "checkpoint-0002.maeckpt"));
        var (code, output, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--model", Path.Combine(root, "model.json"),
            "--epochs", "3", "--warmup-epochs", "1", "--batch-size", "8", "--device", "cpu", "--out", copy, "--resume");
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "pre-trained 3 epochs (12 steps, resumed from checkpoint-0002.maeckpt)");
    }

    /// <summary>The exported graph, run by ONNX Runtime on [0, 1] pixels, equals the encoder's features on the
    /// ImageNet-normalised pixels (the normalisation is inside the graph).</summary>
    [TestMethod]
    public void ExportedOnnxMatchesTheEncoder()
    {
        string onnx = Path.Combine(root, "encoder.onnx");
        var (code, output, error) = Mae("export", "--weights", Weights, "--onnx", onnx, "--pooling", "mean", "--layers", "2");
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "output features [batch, 64]");

        var rng = new Random(4);
        var pixels = Enumerable.Range(0, 2 * 3 * 32 * 32).Select(_ => (float)rng.NextDouble()).ToArray();
        using var session = new InferenceSession(onnx);
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("pixels", new DenseTensor<float>(pixels, new[] { 2, 3, 32, 32 })) });
        var actual = results.First().AsEnumerable<float>().ToArray();

        using var encoder = MaeWeightFile.LoadEncoder(Weights);
        using var noGrad = no_grad();
        var norm = PixelNormalization.Default(3);
        var x = (tensor(pixels, 2, 3, 32, 32) - tensor(norm.Mean).reshape(1, 3, 1, 1)) / tensor(norm.Std).reshape(1, 3, 1, 1);
        var expected = encoder.ExtractFeatures(x, MaePooling.Mean, 2).data<float>().ToArray();
        Assert.AreEqual(expected.Length, actual.Length);
        for (int i = 0; i < actual.Length; i++) Assert.AreEqual(expected[i], actual[i], 1e-4, $"value {i}");
    }

    [TestMethod]
    public void FeaturizeWritesOneRowPerImage()
    {
        string csv = Path.Combine(root, "features.csv");
        var (code, _, error) = Mae("featurize", "--images", Path.Combine(root, "images"), "--weights", Weights, "--out", csv, "--layers", "2");
        Assert.AreEqual(0, code, error);
        var lines = File.ReadAllLines(csv);
        Assert.AreEqual(33, lines.Length, "header + 32 images");
        Assert.AreEqual("Path,Label,f0", string.Join(",", lines[0].Split(',').Take(3)));
        Assert.AreEqual(2 + 64, lines[1].Split(',').Length);
        Assert.IsTrue(lines.Skip(1).All(l => l.Split(',')[2..].All(v => float.IsFinite(float.Parse(v, System.Globalization.CultureInfo.InvariantCulture)))));
        CollectionAssert.AreEquivalent(new[] { "blue", "red" }, lines.Skip(1).Select(l => l.Split(',')[1]).Distinct().ToArray());

        string idv = Path.Combine(root, "features.idv");
        Assert.AreEqual(0, Mae("featurize", "--images", Path.Combine(root, "images"), "--weights", Weights, "--out", idv).Code);
        // No --layers: MaeConfig.FeatureLayers, every block of this 2-block encoder → 2 × 32 values.
        var view = new MLContext().Data.LoadFromBinary(idv);
        Assert.AreEqual(64, ((Microsoft.ML.Data.VectorDataViewType)view.Schema["Features"].Type).Size);
        Assert.AreEqual(32, Microsoft.ML.Data.ColumnCursorExtensions.GetColumn<string>(view, "Path").Count());

        // --pooling quadrants: each block's four quadrant means, 4 × 32 values per block.
        string quadrants = Path.Combine(root, "quadrants.csv");
        (code, var output, error) = Mae("featurize", "--images", Path.Combine(root, "images"), "--weights", Weights, "--out", quadrants, "--layers", "1", "--pooling", "quadrants");
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "= 128 features per image");
        Assert.AreEqual(2 + 128, File.ReadAllLines(quadrants)[1].Split(',').Length);
    }

    [TestMethod]
    public void ReconstructDrawsAPicture()
    {
        string png = Path.Combine(root, "grid.png");
        var (code, _, error) = Mae("reconstruct", "--images", Path.Combine(root, "images"), "--weights", Weights, "--out", png, "--count", "3");
        Assert.AreEqual(0, code, error);
        using var bitmap = SKBitmap.Decode(png);
        Assert.IsTrue(bitmap.Width > 4 * 32 && bitmap.Height > 3 * 32, $"{bitmap.Width}×{bitmap.Height}");
    }

    [TestMethod]
    public void PretrainDrawsReconstructionsEveryNEpochs()
    {
        string run = Path.Combine(root, "pictures");
        var (code, output, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--model", Path.Combine(root, "model.json"),
            "--epochs", "3", "--warmup-epochs", "1", "--batch-size", "8", "--device", "cpu", "--out", run, "--recon-every", "2", "--checkpoint-every", "3");
        Assert.AreEqual(0, code, error);
        CollectionAssert.AreEqual(new[] { "epoch-0002.png", "epoch-0003.png" },
            Directory.GetFiles(Path.Combine(run, "reconstructions")).Select(Path.GetFileName).Order().ToArray(), output);
        using var first = SKBitmap.Decode(Path.Combine(run, "reconstructions", "epoch-0002.png"));
        using var last = SKBitmap.Decode(Path.Combine(run, "reconstructions", "epoch-0003.png"));
        Assert.IsTrue(first.Width > 4 * 32 && first.Height > 8 * 32, $"{first.Width}×{first.Height}");   // 8 rows, 4 columns
        Assert.AreEqual(first.Width, last.Width);
        Assert.AreNotEqual(first.GetPixel(first.Width * 3 / 8, 16), default);   // a picture, not an empty canvas
    }

    /// <summary>Ctrl+C during <c>mae pretrain</c> (the token <see cref="MaeCli.Run"/> links its Ctrl+C handler to, cancelled
    /// while the run is into its second epoch): it stops after the step in progress with exit code 130, one line naming
    /// the checkpoint of that position and no final weights, and <c>--resume</c> ends with the same weights, byte for
    /// byte, as an uninterrupted run.</summary>
    [TestMethod]
    public void CtrlCStopsWithACheckpointAndResumeEndsWhereAnUninterruptedRunEnds()
    {
        string[] Args(string outDir, params string[] more) =>
        [
            "pretrain", "--images", Path.Combine(root, "images"), "--model", Path.Combine(root, "model.json"), "--epochs", "4",
            "--warmup-epochs", "1", "--batch-size", "4", "--device", "cpu", "--out", outDir, "--checkpoint-every", "100",
            "--recon-every", "0", "--num-workers", "1", .. more,
        ];
        string straight = Path.Combine(root, "stop-straight"), cut = Path.Combine(root, "stop-cut");
        Assert.AreEqual(0, Mae(Args(straight)).Code);

        // Ctrl+C once the run has done 11 of its 4 × 8 steps: with --progress-seconds 0 the tool writes a progress line
        // after every step, on the training thread, before the next step looks at the token; the writer cancels while
        // that line is written, so the run stops after step 11 (epoch index 1, 3 of its 8 steps done) on every machine.
        using var ctrlC = new CancellationTokenSource();
        var output = new CancelOnLine("epoch 2/4 step 3/8 ", ctrlC);
        var error = new StringWriter();
        int stoppedCode = MaeCli.Run(Args(cut, "--progress-seconds", "0"), output, error, ctrlC.Token);
        Assert.IsTrue(ctrlC.IsCancellationRequested, "the progress line of step 11 was written:\n" + output);
        Assert.AreEqual(MaeCli.ExitCancelled, stoppedCode, error.ToString());
        StringAssert.Matches(error.ToString().Trim(), new System.Text.RegularExpressions.Regex(
            @"^mae: Training stopped at epoch 1, step 3 of 8; checkpoint written: '.*checkpoint-0001-000003\.maeckpt'\. Run the same command with --resume to continue from there\.$"));
        StringAssert.DoesNotMatch(output.ToString(), new System.Text.RegularExpressions.Regex(@"epoch 2/4 step [4-8]/8|epoch [34]/4"), "no step after the 11th");
        string? latest = global::Mae.MLNet.Pretraining.MaePretrainCheckpoint.FindLatest(cut);
        Assert.IsNotNull(latest);
        StringAssert.Contains(error.ToString(), Path.GetFileName(latest));
        Assert.IsFalse(File.Exists(Path.Combine(cut, "mae.safetensors")), "a stopped run writes no final weights");

        var (code, resumedOutput, resumedError) = Mae(Args(cut, "--resume"));
        Assert.AreEqual(0, code, resumedError);
        StringAssert.Contains(resumedOutput, $"pre-trained 4 epochs (32 steps, resumed from {Path.GetFileName(latest)})");
        CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(straight, "mae.safetensors")), File.ReadAllBytes(Path.Combine(cut, "mae.safetensors")),
            "the resumed run's final weights differ from the uninterrupted run's");
    }

    /// <summary>The tool's output; cancels <paramref name="ctrlC"/> while a line starting with <paramref name="trigger"/>
    /// is written (Ctrl+C at a position, not at a time).</summary>
    sealed class CancelOnLine(string trigger, CancellationTokenSource ctrlC) : StringWriter
    {
        public override void WriteLine(string? value)
        {
            base.WriteLine(value);
            if (value?.StartsWith(trigger, StringComparison.Ordinal) == true) ctrlC.Cancel();
        }
    }

    [TestMethod]
    public void FinetuneWritesAnMLNetZipThatPredictsClassNames()
    {
        string zip = Path.Combine(root, "model.zip");
        var (code, output, error) = Mae("finetune", "--images", Path.Combine(root, "images"), "--weights", Weights, "--out", zip,
            "--epochs", "2", "--warmup-epochs", "1", "--batch-size", "8", "--device", "cpu");
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "2 classes, 32 training images");
        var ml = new MLContext();
        var model = ml.Model.Load(zip, out _);   // ML.NET alone loads it (the seal is an entry it never opens)
        MaeModelZip.Verify(zip, requireSeal: true);   // sealed: every entry ML.NET loads is verified
        // Its images are read as validation read them: resized to int(32 / 0.875) = 36, the centre 32 kept (a crop graph
        // beside the classifier's; EvaluationPixelsTest checks its pixels against the reference's transform).
        using (var archive = System.IO.Compression.ZipFile.OpenRead(zip))
        {
            var graphs = archive.Entries.Where(e => e.Name == "OnnxModel").Select(e =>
            {
                using var s = e.Open();
                var bytes = new MemoryStream();
                s.CopyTo(bytes);
                return System.Text.Encoding.Latin1.GetString(bytes.ToArray());   // ML.NET's header, then the ONNX protobuf
            }).ToList();
            Assert.AreEqual(2, graphs.Count, "the centre crop and the classifier");
            Assert.AreEqual(1, graphs.Count(g => g.Contains("mae.center_crop") && g.Contains("36->32")), "one graph crops 36 → 32");
        }
        // Image paths alone: the zip needs no Label column (item 10 of issue 27).
        var rows = ml.Data.LoadFromEnumerable(new[] { new global::Mae.Cli.Commands.FinetuneCommand.PathRow { Path = Path.Combine(root, "images", "red", "00.png") } });
        var predicted = ml.Data.CreateEnumerable<Prediction>(model.Transform(rows), false).Single();
        CollectionAssert.Contains(new[] { "red", "blue" }, predicted.PredictedLabel);

        // `mae predict` scores the folder as ML.NET does for a deployed app: each CSV row is ML.NET's own prediction for
        // that file, and the accuracy printed is the CSV's share of rows whose class is their sub-folder.
        string folder = Path.Combine(root, "images"), csv = Path.Combine(root, "predictions.csv");
        (code, output, error) = Mae("predict", "--model", zip, "--images", folder, "--out", csv);
        Assert.AreEqual(0, code, error);
        var lines = File.ReadAllLines(csv);
        Assert.AreEqual("path,predicted,probability,true", lines[0]);
        Assert.AreEqual(33, lines.Length, "a header and one row per image");
        var files = lines.Skip(1).Select(l => l.Split(',')).ToList();
        var direct = ml.Data.CreateEnumerable<Prediction>(model.Transform(ml.Data.LoadFromEnumerable(files.Select(f =>
            new global::Mae.Cli.Commands.FinetuneCommand.PathRow { Path = Path.Combine(folder, f[0]) }))), false).Select(p => p.PredictedLabel).ToList();
        CollectionAssert.AreEqual(direct, files.Select(f => f[1]).ToList());
        Assert.IsTrue(files.All(f => f[3] == f[0].Split('/')[0] && float.Parse(f[2], System.Globalization.CultureInfo.InvariantCulture) is >= 0.5f and <= 1f), string.Join("\n", lines));
        int correct = files.Count(f => f[1] == f[3]);
        StringAssert.Contains(output, $"({correct} of 32 images)");

        // A truncated image: refused by name (exit 2, nothing written), or skipped with --skip-bad-files.
        string bad = Path.Combine(root, "predict-bad");
        Directory.CreateDirectory(Path.Combine(bad, "red"));
        File.Copy(Path.Combine(folder, "red", "00.png"), Path.Combine(bad, "red", "00.png"));
        var whole = File.ReadAllBytes(Path.Combine(folder, "red", "01.jpg"));
        File.WriteAllBytes(Path.Combine(bad, "red", "01.jpg"), whole[..(whole.Length * 2 / 3)]);
        string badCsv = Path.Combine(root, "bad.csv");
        (code, _, error) = Mae("predict", "--model", zip, "--images", bad, "--out", badCsv);
        Assert.AreEqual(MaeCli.ExitBadInput, code, error);
        StringAssert.Contains(error, "01.jpg");
        Assert.IsFalse(File.Exists(badCsv));
        (code, output, error) = Mae("predict", "--model", zip, "--images", bad, "--out", badCsv, "--skip-bad-files");
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "skipped " + Path.Combine(bad, "red", "01.jpg"));
        Assert.AreEqual(2, File.ReadAllLines(badCsv).Length);
    }

    public sealed class Prediction { public string PredictedLabel { get; set; } = ""; }

    /// <summary>The from-scratch control: the same fine-tuning from a randomly initialised model of a preset or config;
    /// exactly one of --weights and --from-scratch.</summary>
    [TestMethod]
    public void FinetuneFromScratchTrainsTheNamedModelWithoutWeights()
    {
        string zip = Path.Combine(root, "scratch.zip"), model = Path.Combine(root, "model.json");
        var (code, output, error) = Mae("finetune", "--images", Path.Combine(root, "images"), "--from-scratch", model, "--out", zip,
            "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--mixup", "0", "--cutmix", "0");
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "from scratch (no pre-training)");
        Assert.IsTrue(File.Exists(zip));

        (code, _, error) = Mae("finetune", "--images", Path.Combine(root, "images"), "--from-scratch", model, "--weights", Weights, "--out", zip);
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "give exactly one");
        (code, _, error) = Mae("finetune", "--images", Path.Combine(root, "images"), "--from-scratch", "no-such-preset", "--out", zip);
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "--from-scratch: ");
    }

    /// <summary>A <c>--minutes</c> run's output: the printed plan (1 to <paramref name="maxEpochs"/> epochs) and the epochs
    /// trained, each of <paramref name="stepsPerEpoch"/> steps — the plan's, or, where the time box re-fitted them at an
    /// epoch end (the machine's pace changed), those of its last "time box: … → N epochs" line. Returns them.</summary>
    static int AssertPlannedAndTrained(string output, int maxEpochs, int stepsPerEpoch)
    {
        StringAssert.Contains(output, "plan: ");
        var planned = System.Text.RegularExpressions.Regex.Match(output, @"→ (\d+) epoch\(s\)");
        Assert.IsTrue(planned.Success, output);
        int epochs = int.Parse(planned.Groups[1].Value);
        Assert.IsTrue(epochs >= 1 && epochs <= maxEpochs, output);
        var refits = System.Text.RegularExpressions.Regex.Matches(output, @"time box: \d+ → (\d+) epochs");
        int trained = refits.Count == 0 ? epochs : int.Parse(refits[^1].Groups[1].Value);
        Assert.IsTrue(trained >= 1 && trained <= maxEpochs, output);
        StringAssert.Contains(output, $"pre-trained {trained} epochs ({trained * stepsPerEpoch} steps)");
        return trained;
    }

    /// <summary>No --model: the preset comes from the images' size (40–70 px here: the nano encoder at 64 px, patch 8)
    /// and is printed; --minutes measures steps and prints the plan it then trains.</summary>
    [TestMethod]
    public void PretrainChoosesTheModelFromTheImagesAndPlansTheMinutes()
    {
        string run = Path.Combine(root, "planned");
        var (code, output, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--batch-size", "8", "--device", "cpu",
            "--minutes", "0.05", "--epochs", "3", "--recon-every", "0", "--out", run);
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "model: nano32 at 64 px, patch 8, 64 px");
        AssertPlannedAndTrained(output, maxEpochs: 3, stepsPerEpoch: 4);   // at most --epochs
        using var mae = MaeWeightFile.LoadMaskedAutoencoder(Path.Combine(run, "mae.safetensors"));
        Assert.AreEqual(MaeConfig.Nano32 with { ImageSize = 64, PatchSize = 8 }, mae.Config);

        (code, _, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--minutes", "0", "--out", Path.Combine(root, "x"));
        Assert.AreEqual(MaeCli.ExitUsage, code);
        StringAssert.Contains(error, "--minutes must be a number > 0");
    }

    /// <summary>A folder smaller than the recipe's batch (32 images against the small-image recipe's 256) trains
    /// without a --batch-size: the batch is halved to 32 and the output says so; a given --batch-size is kept.</summary>
    [TestMethod]
    public void PretrainFitsTheRecipesBatchToASmallFolder()
    {
        string run = Path.Combine(root, "small-folder");
        var (code, output, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--model", Path.Combine(root, "model.json"),
            "--epochs", "1", "--device", "cpu", "--recon-every", "0", "--out", run);
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "batch: 32 images per step (the recipe's 256 is more than the folder's 32 images");
        StringAssert.Contains(output, "pre-trained 1 epochs (1 steps)");
        (code, output, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--model", Path.Combine(root, "model.json"),
            "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--recon-every", "0", "--out", run + "-16");
        Assert.AreEqual(0, code, error);
        Assert.IsFalse(output.Contains("batch: "), output);
        StringAssert.Contains(output, "pre-trained 1 epochs (2 steps)");
    }

    [TestMethod]
    public void BadFlagsAndFilesEndWithOneLineAndNothingWritten()
    {
        string target = Path.Combine(root, "never.onnx");
        var (code, _, error) = Mae("export", "--weights", Path.Combine(root, "missing.pth"), "--onnx", target);
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "missing.pth' does not exist");
        Assert.AreEqual(1, error.Trim().Split('\n').Length, error);

        (code, _, error) = Mae("export", "--weights", Path.Combine(root, "images", "red", "00.png"), "--onnx", target);
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "00.png");

        // A block count beyond the encoder's 2 blocks: the library's check, in the tool's words.
        (code, _, error) = Mae("export", "--weights", Weights, "--onnx", target, "--layers", "3");
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "--layers is the number of last blocks");
        StringAssert.Contains(error, "expected 1 … 2 (the encoder's depth); got 3");

        (code, _, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--epochs", "many", "--out", Path.Combine(root, "x"));
        Assert.AreEqual(MaeCli.ExitUsage, code);
        StringAssert.Contains(error, "--epochs");

        (code, _, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--model", "vit-z99", "--out", Path.Combine(root, "x"));
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "Unknown MAE preset 'vit-z99'");

        (code, _, error) = Mae("finetune", "--images", Path.Combine(root, "images", "red"), "--weights", Weights, "--out", Path.Combine(root, "m.zip"));
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "one sub-folder of images per class");

        // RandAugment and erasing flags are checked before anything is read or written, in the flags' own words.
        (code, _, error) = Mae("finetune", "--images", Path.Combine(root, "images"), "--weights", Weights, "--out", Path.Combine(root, "m.zip"), "--aa", "rand-q9");
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "--aa: RandAugment config \"rand-q9\": unknown section \"q9\"");
        (code, _, error) = Mae("finetune", "--images", Path.Combine(root, "images"), "--weights", Weights, "--out", Path.Combine(root, "m.zip"), "--reprob", "1.5");
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "--reprob must be in [0, 1]; got 1.5");
        (code, _, error) = Mae("finetune", "--images", Path.Combine(root, "images"), "--weights", Weights, "--out", Path.Combine(root, "m.zip"), "--crop-scale", "0");
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "--crop-scale must be in (0, 1]; got 0");
        Assert.IsFalse(File.Exists(target) || File.Exists(Path.Combine(root, "m.zip")));
        Assert.AreEqual(0, Directory.GetFiles(root, ".*tmp-*", SearchOption.AllDirectories).Length, "no temporary file left behind");
    }

    [TestMethod]
    public void HeadCountsForAWidthNoPresetHas()
    {
        // An official-layout encoder 8 wide: no preset and no args say its head count.
        string weights = Interop.PublicWeightsTest.F("args_tiny.pth"), target = Path.Combine(root, "tiny.onnx");
        var (code, _, error) = Mae("export", "--weights", weights, "--onnx", target);
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "head counts");
        Assert.IsFalse(File.Exists(target));

        (code, _, error) = Mae("export", "--weights", weights, "--onnx", target, "--num-heads", "2,x");
        Assert.AreEqual(MaeCli.ExitBadInput, code);
        StringAssert.Contains(error, "--num-heads takes one or two positive integers");

        (code, var output, error) = Mae("export", "--weights", weights, "--onnx", target, "--num-heads", "2");
        Assert.AreEqual(0, code, error);
        Assert.IsTrue(File.Exists(target), output);
    }
}
