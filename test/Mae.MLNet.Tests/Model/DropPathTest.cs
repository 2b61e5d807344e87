using Mae.MLNet.Model;
using Mae.MLNet.Tests.FineTuning;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Model;

[TestClass]
public class DropPathTest
{
    /// <summary>timm's Block with drop path, spelled out from its parts: x + drop_path(attn(norm1(x))), then
    /// + drop_path(mlp(norm2(·))), each mask floor(keep + U[0, 1)) per sample from the CPU generator, attn's first.</summary>
    static Tensor TimmBlock(Block b, Tensor x, double p)
    {
        Tensor Drop(Tensor y)
        {
            if (p == 0) return y;
            double keep = 1 - p;
            var mask = (rand(y.shape[0], 1, 1) + keep).floor();
            return y / keep * mask;
        }
        var h = x + Drop(b.attn.forward(b.norm1.forward(x)));
        return h + Drop(b.mlp.forward(b.norm2.forward(h)));
    }

    [TestMethod]
    public void BlockDropsWholeBranchesPerSampleAsTimmAndIsPlainInEval()
    {
        using var scope = NewDisposeScope();
        var block = new Block(16, 2, 32, 1e-6, dropPathRate: 0.4);
        var x = randn(64, 5, 16);
        block.train();
        torch.manual_seed(3);
        var ours = block.forward(x);
        torch.manual_seed(3);
        var reference = TimmBlock(block, x, 0.4);
        Assert.IsTrue(ours.allclose(reference, rtol: 0, atol: 1e-6), "same masks, same outputs");
        // Some samples lost a branch (at p = 0.4 over 64 samples × 2 branches, all kept has probability 0.6^128).
        var plain = TimmBlock(block, x, 0);
        Assert.IsFalse(ours.allclose(plain, rtol: 0, atol: 1e-6));
        block.eval();
        Assert.IsTrue(TensorAssert.Same(block.forward(x), plain), "eval: no drop path");
        block.train();
        block.DropPathRate = 0;
        Assert.IsTrue(TensorAssert.Same(block.forward(x), plain), "rate 0: no drop path");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => block.DropPathRate = 1);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Block(16, 2, 32, 1e-6, dropPathRate: -0.1));
    }

    [TestMethod]
    public void ClassifierGivesItsBlocksLinspaceRatesAndItsForwardIsTheBlocksForward()
    {
        using var scope = NewDisposeScope();
        var config = TinyFt.Config with { Depth = 4 };
        var model = new VitClassifier(config, 3, dropPathRate: 0.3);
        // torch.linspace(0, 0.3, 4) = [0, 0.1, 0.2, 0.3].
        var rates = model.Encoder.blocks.Select(b => b.DropPathRate).ToArray();
        for (int i = 0; i < 4; i++) Assert.AreEqual(0.1 * i, rates[i], 1e-12);
        model.DropPathRate = 0;
        Assert.IsTrue(model.Encoder.blocks.All(b => b.DropPathRate == 0));
        model.DropPathRate = 0.6;

        // The training forward is timm's blocks (with their masks in order) under fc_norm(mean of patch tokens) and head.
        var images = rand(6, 1, 16, 16);
        model.train();
        torch.manual_seed(9);
        var logits = model.forward(images);
        torch.manual_seed(9);
        var x = model.Encoder.PrependCls(model.Encoder.Embed(images));
        for (int i = 0; i < 4; i++) x = TimmBlock(model.Encoder.blocks[i], x, 0.2 * i);
        var reference = model.head.forward(model.fc_norm!.forward(x[.., 1.., ..].mean(new long[] { 1 })));
        Assert.IsTrue(logits.allclose(reference, rtol: 0, atol: 1e-6));
    }
}
