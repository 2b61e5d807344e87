using Mae.MLNet.Interop;
using Mae.MLNet.Model;

namespace Mae.MLNet.Tests.Cli;

public partial class MaeCliTest
{
    /// <summary><c>mae pretrain --model convnextv2-atto</c>: FCMAE on the same folder, recipe and engine; the official
    /// mask ratio 0.6 by default; the encoder written under timm's names loads back as a ConvNeXt V2-Atto; and
    /// <c>mae finetune</c> fine-tunes it (or an atto from scratch) into a model zip ML.NET scores.</summary>
    [TestMethod]
    public void PretrainConvNextV2WithFcmaeThenFineTuneItsWeights()
    {
        string run = Path.Combine(root, "convnext");
        var (code, output, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--model", "convnextv2-atto", "--input-size", "64",
            "--epochs", "1", "--warmup-epochs", "0", "--batch-size", "8", "--device", "cpu", "--out", run);
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "FCMAE, ConvNeXt V2 3ch 64px, depths [2, 2, 6, 2], dims [40, 80, 160, 320]");
        StringAssert.Contains(output, "mask ratio 0.6");
        StringAssert.Contains(output, "pre-trained 1 epochs (4 steps)");
        Assert.IsTrue(File.Exists(Path.Combine(run, "checkpoint-0001.maeckpt")));
        // The last epoch's reconstruction picture: in each row's masked column every 32-px cell is either the original
        // column's pixels (visible) or all grey (removed); ratio 0.6 of 2×2 cells keeps exactly one.
        StringAssert.Contains(output, "reconstructions: ");
        AssertOneVisibleCellPerRow(Path.Combine(run, "reconstructions", "epoch-0001.png"), 8);
        using var encoder = MaeWeightFile.LoadConvNextV2(Path.Combine(run, "convnextv2.safetensors"));
        Assert.AreEqual(ConvNextV2Config.Atto, encoder.Config);   // 224 px: the file does not hold the image size
        Assert.AreEqual(0, encoder.NumClasses);

        // `mae finetune` takes those weights (told a ConvNeXt by their names): a new head, the same recipe, a model zip
        // that ML.NET alone loads and scores (the ConvNeXt exported to ONNX).
        string zip = Path.Combine(root, "convnext.zip"), ft = Path.Combine(root, "convnext-ft");
        (code, output, error) = Mae("finetune", "--images", Path.Combine(root, "images"), "--weights", Path.Combine(run, "convnextv2.safetensors"),
            "--input-size", "64", "--epochs", "1", "--warmup-epochs", "0", "--batch-size", "8", "--device", "cpu", "--out", zip, "--checkpoint-dir", ft);
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "weights '" + Path.Combine(run, "convnextv2.safetensors") + "': ConvNeXt V2 3ch 64px, depths [2, 2, 6, 2]");
        StringAssert.Contains(output, "2 classes, 32 training images");
        var ml = new Microsoft.ML.MLContext();
        var model = ml.Model.Load(zip, out _);
        var rows = ml.Data.LoadFromEnumerable(new[] { new global::Mae.Cli.Commands.FinetuneCommand.PathRow { Path = Path.Combine(root, "images", "red", "00.png") } });
        var predicted = ml.Data.CreateEnumerable<Prediction>(model.Transform(rows), false).Single();
        CollectionAssert.Contains(new[] { "red", "blue" }, predicted.PredictedLabel);
        // Its checkpoint is accepted by --weights as well (its network; the head starts anew, as for any weights).
        (code, output, error) = Mae("finetune", "--images", Path.Combine(root, "images"), "--weights", Path.Combine(ft, "finetune-0001.maeft"),
            "--input-size", "64", "--epochs", "1", "--warmup-epochs", "0", "--batch-size", "8", "--device", "cpu", "--out", Path.Combine(root, "convnext-2.zip"));
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "finetune-0001.maeft': ConvNeXt V2 3ch 64px");
        (code, output, error) = Mae("finetune", "--images", Path.Combine(root, "images"), "--from-scratch", "convnextv2-atto", "--input-size", "64",
            "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--out", Path.Combine(root, "convnext-scratch.zip"));
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "from scratch (no pre-training): ConvNeXt V2 3ch 64px");

        // `mae export --onnx` writes the network up to the pooled features of the last 2 stages; ONNX Runtime gives the
        // features the model computes (the graph normalises the [0, 1] pixels as the featurizer does).
        string onnx = Path.Combine(root, "convnext.onnx");
        (code, output, error) = Mae("export", "--weights", Path.Combine(run, "convnextv2.safetensors"), "--onnx", onnx, "--input-size", "64", "--layers", "2");
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "output features [batch, 480] (ConvNeXt V2, pooled last 2 stage(s))");
        using (var scope = TorchSharp.torch.NewDisposeScope())
        using (var session = new Microsoft.ML.OnnxRuntime.InferenceSession(onnx))
        {
            TorchSharp.torch.random.manual_seed(1);
            var x = TorchSharp.torch.rand(2, 3, 64, 64);
            var pixels = x.contiguous().data<float>().ToArray();
            using var input = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(pixels, new long[] { 2, 3, 64, 64 });
            using var results = session.Run(new Microsoft.ML.OnnxRuntime.RunOptions(), new[] { "pixels" }, new[] { input }, new[] { "features" });
            var actual = TorchSharp.torch.tensor(results[0].GetTensorDataAsSpan<float>().ToArray(), 2, 480);
            using var atto = MaeWeightFile.LoadConvNextV2(Path.Combine(run, "convnextv2.safetensors"), ConvNextV2Config.Atto with { ImageSize = 64 });
            TorchSharp.torch.Tensor expected;
            using (TorchSharp.torch.no_grad()) expected = atto.ForwardFeatures(PixelNormalization.Default(3).Apply(x), 2);
            Model.TensorAssert.Close(actual, expected, 1e-4, "ONNX features of the last 2 stages");
        }

        // `mae featurize` with the same weights: every stage pooled (40 + 80 + 160 + 320 features), one row per image.
        string csv = Path.Combine(root, "convnext-features.csv");
        (code, output, error) = Mae("featurize", "--images", Path.Combine(root, "images"), "--weights", Path.Combine(run, "convnextv2.safetensors"),
            "--input-size", "64", "--layers", "4", "--device", "cpu", "--out", csv);
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "pooled features of the last 4 stage(s) = 600 features per image");
        var lines = File.ReadAllLines(csv);
        Assert.AreEqual(33, lines.Length);
        Assert.AreEqual(2 + 600, lines[1].Split(',').Length);

        // The FCMAE pre-training checkpoint as --weights: its encoder is the final weights file's network (the run ended
        // there), so featurize writes the same features, export --out the same tensors, and finetune starts from it.
        string checkpoint = Path.Combine(run, "checkpoint-0001.maeckpt");
        string fromCheckpoint = Path.Combine(root, "convnext-features-ckpt.csv");
        (code, _, error) = Mae("featurize", "--images", Path.Combine(root, "images"), "--weights", checkpoint,
            "--input-size", "64", "--layers", "4", "--device", "cpu", "--out", fromCheckpoint);
        Assert.AreEqual(0, code, error);
        CollectionAssert.AreEqual(lines, File.ReadAllLines(fromCheckpoint), "features of the checkpoint and of convnextv2.safetensors");
        foreach (var exported in new[] { checkpoint, Path.Combine(run, "convnextv2.safetensors") })
        {
            string copy = Path.Combine(root, "convnext-copy.safetensors");
            (code, output, error) = Mae("export", "--weights", exported, "--out", copy);
            Assert.AreEqual(0, code, error);
            StringAssert.Contains(output, "a ConvNeXt V2 under timm's names");
            using var written = MaeWeightFile.LoadConvNextV2(copy);
            var expectedWeights = encoder.state_dict();
            foreach (var (name, value) in written.state_dict())
                Assert.IsTrue(Model.TensorAssert.Same(value, expectedWeights[name]), $"{exported}: {name}");
        }
        (code, output, error) = Mae("finetune", "--images", Path.Combine(root, "images"), "--weights", checkpoint,
            "--input-size", "64", "--epochs", "1", "--warmup-epochs", "0", "--batch-size", "8", "--device", "cpu", "--out", Path.Combine(root, "convnext-3.zip"));
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "checkpoint-0001.maeckpt': ConvNeXt V2 3ch 64px");
        // `mae reconstruct` draws with the checkpoint's FCMAE (its cells, the official 0.6 by default).
        string drawn = Path.Combine(root, "convnext-recon.png");
        (code, output, error) = Mae("reconstruct", "--weights", checkpoint, "--images", Path.Combine(root, "images"), "--count", "2", "--out", drawn);
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "mask ratio 0.6");
        AssertOneVisibleCellPerRow(drawn, 2);

        (code, _, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--model", "convnextv2-atto", "--input-size", "48",
            "--epochs", "1", "--out", Path.Combine(root, "convnext-48"));
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(error, "multiple of the total stride 32");
    }

    /// <summary><c>mae pretrain --model convnextv2-atto --minutes M</c>: a throw-away FCMAE measures the step, the plan is
    /// printed and then trained (at most --epochs), as for the ViT.</summary>
    [TestMethod]
    public void PretrainConvNextV2PlansTheMinutes()
    {
        string run = Path.Combine(root, "convnext-planned");
        var (code, output, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--model", "convnextv2-atto", "--input-size", "64",
            "--batch-size", "8", "--device", "cpu", "--minutes", "0.05", "--epochs", "3", "--recon-every", "0", "--out", run);
        Assert.AreEqual(0, code, error);
        AssertPlannedAndTrained(output, maxEpochs: 3, stepsPerEpoch: 4);   // at most --epochs
        Assert.IsTrue(File.Exists(Path.Combine(run, "convnextv2.safetensors")));
    }

    /// <summary>A 64 px FCMAE picture: in each row's masked column every 32-px cell is either the original column's
    /// pixels (visible) or all grey (removed); ratio 0.6 of 2×2 cells keeps exactly one.</summary>
    static void AssertOneVisibleCellPerRow(string png, int rows)
    {
        using var picture = SkiaSharp.SKBitmap.Decode(png);
        const int scale = 2, pad = 2;   // the grid's automatic scale for 64 px cells (≥ 96 px) and its padding
        Assert.AreEqual(rows * (64 * scale + pad) + pad, picture.Height, "rows");
        for (int row = 0; row < rows; row++)
        {
            int visible = 0;
            for (int cell = 0; cell < 4; cell++)
            {
                bool same = true, grey = true;
                for (int y = 0; y < 32; y++)
                    for (int x = 0; x < 32; x++)
                    {
                        int iy = cell / 2 * 32 + y, ix = cell % 2 * 32 + x;
                        var (mx, my) = global::Mae.MLNet.Visualization.ReconstructionGrid.PixelOrigin(row, 0, iy, ix, scale, pad, 64, 64);
                        var (ox, oy) = global::Mae.MLNet.Visualization.ReconstructionGrid.PixelOrigin(row, 3, iy, ix, scale, pad, 64, 64);
                        var m = picture.GetPixel(mx, my);
                        same &= m == picture.GetPixel(ox, oy);
                        grey &= m.Red == 128 && m.Green == 128 && m.Blue == 128;
                    }
                Assert.IsTrue(same || grey, $"{png} row {row} cell {cell}: neither the original nor grey");
                if (same && !grey) visible++;
            }
            Assert.AreEqual(1, visible, $"{png} row {row}: visible cells");
        }
    }
}
