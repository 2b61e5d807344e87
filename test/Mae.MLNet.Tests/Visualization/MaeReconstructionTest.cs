using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Tests.Model;
using Mae.MLNet.Visualization;
using SkiaSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Visualization;

[TestClass]
public class MaeReconstructionTest
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>8 px images, patch 4 → a 2×2 grid of 48-value patches; a small transformer.</summary>
    private static MaeConfig Tiny(bool normPix, int channels = 3) => new()
    {
        ImageSize = 8, PatchSize = 4, InChannels = channels, EmbedDim = 16, Depth = 1, NumHeads = 2,
        DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2, NormPixLoss = normPix,
    };

    [TestMethod]
    public void UnnormalizeIsTheExactInverseOfNormalizePatches()
    {
        // Row [1, 2, 3, 4]: mean 2.5, unbiased variance (2.25 + 0.25 + 0.25 + 2.25)/3 = 5/3.
        using var target = tensor(new double[] { 1, 2, 3, 4 }, new long[] { 1, 1, 4 });
        using var normalized = MaskedAutoencoder.NormalizePatches(target);
        double sd = Math.Sqrt(5.0 / 3 + 1e-6);
        for (int i = 0; i < 4; i++) Assert.AreEqual((i + 1 - 2.5) / sd, normalized[0, 0, i].item<double>(), 1e-12, $"normalised {i}");
        using var back = MaeReconstruction.UnnormalizePatches(normalized, target);
        for (int i = 0; i < 4; i++) Assert.AreEqual(i + 1.0, back[0, 0, i].item<double>(), 1e-12, $"restored {i}");
        // A prediction of 1 (one standard deviation above the mean) maps to mean + sd.
        using var ones = full(1, 1, 4, 1.0, dtype: ScalarType.Float64);
        using var up = MaeReconstruction.UnnormalizePatches(ones, target);
        Assert.AreEqual(2.5 + sd, up[0, 0, 0].item<double>(), 1e-12);
        TorchRuntime.Seed(11);
        using var random = rand(2, 5, 12, dtype: ScalarType.Float64);
        using var rn = MaskedAutoencoder.NormalizePatches(random);
        using var rb = MaeReconstruction.UnnormalizePatches(rn, random);
        TensorAssert.Close(rb, random, 1e-12, "round trip");
        Assert.ThrowsExactly<ArgumentException>(() => MaeReconstruction.UnnormalizePatches(rn, random[.., ..4, ..]));
    }

    [TestMethod]
    public void PerfectPredictionReconstructsTheOriginal()
    {
        foreach (bool normPix in new[] { true, false })
        {
            TorchRuntime.Seed(12);
            using var model = new MaskedAutoencoder(Tiny(normPix));
            using var images = randn(2, 3, 8, 8);
            using var patches = model.Patchify(images);
            using var pred = normPix ? MaskedAutoencoder.NormalizePatches(patches) : patches.clone();
            // Patches 1 and 2 removed in image 0; patches 0, 1, 3 removed in image 1.
            using var mask = tensor(new float[] { 0, 1, 1, 0, 1, 1, 0, 1 }, new long[] { 2, 4 });
            using var r = MaeReconstruction.FromPrediction(model, images, pred, mask);
            TensorAssert.Close(r.Reconstruction, images, 1e-5, $"recon (normPix {normPix})");
            TensorAssert.Close(r.Pasted, images, 1e-5, $"pasted (normPix {normPix})");
            Assert.IsTrue(TensorAssert.Same(r.Original, images));
            // Patch 1 of image 0 is rows 0..3, columns 4..7: masked → 0 there, the original elsewhere.
            Assert.AreEqual(1f, r.Mask[0, 0, 2, 5].item<float>());
            Assert.AreEqual(0f, r.Mask[0, 0, 2, 1].item<float>());
            Assert.AreEqual(0f, r.Masked[0, 1, 2, 5].item<float>());
            Assert.AreEqual(images[0, 1, 2, 1].item<float>(), r.Masked[0, 1, 2, 1].item<float>());
            Assert.AreEqual(1f, r.Mask[1, 0, 7, 7].item<float>(), "patch 3 of image 1");
            Assert.AreEqual(0f, r.Mask[1, 0, 7, 0].item<float>(), "patch 2 of image 1");
        }
    }

    [TestMethod]
    public void ComputeKeepsVisiblePatchesAndRestoresTrainingMode()
    {
        TorchRuntime.Seed(13);
        using var model = new MaskedAutoencoder(Tiny(normPix: true));
        model.train();
        using var images = randn(3, 3, 8, 8);
        using var noise = tensor(new float[] { 0.1f, 0.9f, 0.8f, 0.7f, 0.9f, 0.2f, 0.8f, 0.7f, 0.9f, 0.8f, 0.7f, 0.3f }, new long[] { 3, 4 });
        using var r = MaeReconstruction.Compute(model, images, 0.75, noise);
        Assert.IsTrue(model.training, "training flag restored");
        // len_keep = 1: the smallest noise is kept → patch 0, 1, 3 visible in images 0, 1, 2.
        int[] kept = { 0, 1, 3 };
        for (int n = 0; n < 3; n++)
            for (int p = 0; p < 4; p++)
            {
                int y = (p / 2) * 4 + 1, x = (p % 2) * 4 + 2;
                float m = r.Mask[n, 0, y, x].item<float>();
                Assert.AreEqual(p == kept[n] ? 0f : 1f, m, $"mask image {n} patch {p}");
                if (p == kept[n])
                    Assert.AreEqual(images[n, 2, y, x].item<float>(), r.Pasted[n, 2, y, x].item<float>(), $"pasted visible {n}");
                else
                    Assert.AreEqual(r.Reconstruction[n, 2, y, x].item<float>(), r.Pasted[n, 2, y, x].item<float>(), $"pasted removed {n}");
            }
        CollectionAssert.AreEqual(new long[] { 3, 3, 8, 8 }, r.Reconstruction.shape);
        Assert.AreEqual(ScalarType.Float32, r.Reconstruction.dtype);
    }

    [TestMethod]
    public void PngGridDecodesToTheExpectedPixels()
    {
        TorchRuntime.Seed(14);
        using var model = new MaskedAutoencoder(Tiny(normPix: true));
        var mean = new[] { 0.485f, 0.456f, 0.406f };
        var std = new[] { 0.229f, 0.224f, 0.225f };
        // Display values in [0.1, 0.9], stored normalised like the augmentation's output.
        using var display = rand(2, 3, 8, 8) * 0.8 + 0.1;
        using var meanT = tensor(mean, new long[] { 1, 3, 1, 1 });
        using var stdT = tensor(std, new long[] { 1, 3, 1, 1 });
        using var images = (display - meanT) / stdT;
        using var patches = model.Patchify(images);
        using var pred = MaskedAutoencoder.NormalizePatches(patches);
        using var mask = tensor(new float[] { 0, 1, 1, 0, 1, 1, 0, 1 }, new long[] { 2, 4 });
        using var r = MaeReconstruction.FromPrediction(model, images, pred, mask);
        string path = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"mae_grid_{Guid.NewGuid():N}.png");
        var options = new ReconstructionGrid.Options { Scale = 3, Padding = 2 };
        ReconstructionGrid.SavePng(path, r, mean, std, options);
        try
        {
            using var png = SKBitmap.Decode(path);
            Assert.IsNotNull(png, "decodes");
            Assert.AreEqual(4 * 24 + 5 * 2, png.Width);
            Assert.AreEqual(2 * 24 + 3 * 2, png.Height);
            Assert.AreEqual(new SKColor(255, 255, 255), png.GetPixel(0, 0), "padding is white");
            // Image 0, pixel (2, 5) lies in removed patch 1: grey in the masked column.
            var (mx, my) = ReconstructionGrid.PixelOrigin(0, 0, 2, 5, 3, 2, 8, 8);
            Assert.AreEqual(new SKColor(128, 128, 128), png.GetPixel(mx + 1, my + 2), "masked cell is grey");
            // Pixel (2, 1) is visible: the original colour in the masked, reconstruction and original columns.
            for (int col = 0; col < 4; col++)
            {
                foreach (var (y, x) in new[] { (2, 1), (2, 5), (6, 6) })
                {
                    if (col == 0 && (y, x) != (2, 1)) continue;
                    var (px, py) = ReconstructionGrid.PixelOrigin(0, col, y, x, 3, 2, 8, 8);
                    var got = png.GetPixel(px + 2, py);
                    byte Expected(int c) => (byte)Math.Round(display[0, c, y, x].item<float>() * 255, MidpointRounding.AwayFromZero);
                    Assert.AreEqual(Expected(0), got.Red, 1, $"col {col} ({y},{x}) red");
                    Assert.AreEqual(Expected(1), got.Green, 1, $"col {col} ({y},{x}) green");
                    Assert.AreEqual(Expected(2), got.Blue, 1, $"col {col} ({y},{x}) blue");
                }
            }
        }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void GreyImagesAreDrawnAsGreyAndBadInputsAreRejected()
    {
        using var model = new MaskedAutoencoder(Tiny(normPix: false, channels: 1));
        using var images = full(1, 1, 8, 8, 0.25f);
        using var mask = zeros(1, 4);
        using var pred = model.Patchify(images);
        using var r = MaeReconstruction.FromPrediction(model, images, pred, mask);
        var (w, h, rgba) = ReconstructionGrid.Render(r, new[] { 0.5f }, new[] { 2f }, new ReconstructionGrid.Options { Scale = 1, Padding = 0 });
        Assert.AreEqual(32, w);
        Assert.AreEqual(8, h);
        // 0.25·2 + 0.5 = 1.0 → 255 in every channel; clamps above 1.
        Assert.IsTrue(rgba.All(b => b == 255));
        var (_, _, dark) = ReconstructionGrid.Render(r, new[] { -1f }, new[] { 1f }, new ReconstructionGrid.Options { Scale = 1, Padding = 0 });
        Assert.AreEqual(0, dark[0], "clamped below 0");
        Assert.ThrowsExactly<ArgumentException>(() => ReconstructionGrid.Render(r, new[] { 0.5f, 0.5f, 0.5f }, new[] { 1f, 1f, 1f }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ReconstructionGrid.Render(r, new[] { 0.5f }, new[] { 1f }, new ReconstructionGrid.Options { Padding = -1 }));
        using var wrongPred = zeros(1, 4, 5);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => MaeReconstruction.FromPrediction(model, images, wrongPred, mask));
        StringAssert.Contains(ex.Message, "16");
        using var wrongImages = zeros(1, 3, 8, 8);
        Assert.ThrowsExactly<ArgumentException>(() => MaeReconstruction.FromPrediction(model, wrongImages, pred, mask));
    }

    [TestMethod]
    public void ComputeAndRenderLeaveNoLiveTensorsBehind()
    {
        using var model = new MaskedAutoencoder(Tiny(normPix: true));
        using var images = randn(2, 3, 8, 8);
        using (MaeReconstruction.Compute(model, images)) { } // warm-up
        long before = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 5; i++)
        {
            using var r = MaeReconstruction.Compute(model, images);
            ReconstructionGrid.Render(r, new[] { 0.5f, 0.5f, 0.5f }, new[] { 0.2f, 0.2f, 0.2f });
        }
        Assert.AreEqual(before, TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount, "live tensors");
    }

    /// <summary>FCMAE's pictures against a computation by hand: 64 px → 2×2 cells of 32 px, ratio 0.6 keeps the one cell
    /// of smallest noise; the mask is that cell's pixels; the masked picture is the input there and 0 elsewhere; the
    /// reconstruction of a cell is the decoder's channel vector at that cell, read as (row, column, channel) in the
    /// official layout and mapped back with the cell's own mean and unbiased variance; pasted takes visible cells from
    /// the input.</summary>
    [TestMethod]
    public void FcmaePicturesShowItsCellMaskAndItsPredictionUnnormalisedPerCell()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        using var model = new Fcmae(ConvNextV2Config.Atto with { ImageSize = 64 });
        var images = randn(2, 3, 64, 64);
        var noise = tensor(new float[] { 0.9f, 0.1f, 0.5f, 0.7f, 0.3f, 0.8f, 0.6f, 0.2f }, new long[] { 2, 4 });
        int[] keptCell = { 1, 3 };   // the smallest noise of each row
        model.train();
        using var result = MaeReconstruction.Compute(model, images, 0.6, noise);
        Assert.IsTrue(model.training, "the training flag is restored");
        model.eval();
        Tensor pred;
        using (no_grad()) pred = model.Forward(images, 0.6, noise).pred;   // [2, 32·32·3, 2, 2]

        TensorAssert.Close(result.Original, images, 0, "original");
        for (int n = 0; n < 2; n++)
            for (int cell = 0; cell < 4; cell++)
            {
                int i = cell / 2, j = cell % 2;
                bool kept = cell == keptCell[n];
                var rows = TensorIndex.Slice(i * 32, (i + 1) * 32);
                var cols = TensorIndex.Slice(j * 32, (j + 1) * 32);
                var input = images[n, .., rows, cols];
                Assert.AreEqual(kept ? 0.0 : 32 * 32, result.Mask[n, 0, rows, cols].sum().item<float>(), 0, $"mask of image {n} cell {cell}");
                TensorAssert.Close(result.Masked[n, .., rows, cols], kept ? input : zeros_like(input), 0, $"masked image {n} cell {cell}");
                double mean = input.mean().item<float>(), sd = Math.Sqrt(input.var().item<float>() + 1e-6);   // unbiased, over the cell's 3072 values
                var expected = pred[n, .., i, j].reshape(32, 32, 3).permute(2, 0, 1) * sd + mean;
                TensorAssert.Close(result.Reconstruction[n, .., rows, cols], expected, 1e-4, $"reconstruction of image {n} cell {cell}");
                TensorAssert.Close(result.Pasted[n, .., rows, cols], kept ? input : expected, 1e-4, $"pasted image {n} cell {cell}");
            }
    }
}
