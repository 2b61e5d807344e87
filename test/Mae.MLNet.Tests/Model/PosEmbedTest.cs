using Mae.MLNet.Model;

namespace Mae.MLNet.Tests.Model;

[TestClass]
public class PosEmbedTest
{
    [TestMethod]
    public void MatchesClosedFormValues()
    {
        // D = 8, grid 3: each quarter has ω = [1, 1/100]. First half encodes the column w, second the row h.
        float[] table = PosEmbed.SinCos2D(8, 3, clsToken: true);
        Assert.AreEqual(10 * 8, table.Length);
        for (int i = 0; i < 8; i++) Assert.AreEqual(0f, table[i], "cls row is zeros");
        // Patch (h = 2, w = 1) is token 1 + 2·3 + 1 = 8.
        float[] expected = { 0.84147098f, 0.00999983f, 0.54030231f, 0.99995000f,   // sin(1), sin(.01), cos(1), cos(.01)
                             0.90929743f, 0.01999867f, -0.41614684f, 0.99980001f }; // sin(2), sin(.02), cos(2), cos(.02)
        for (int i = 0; i < 8; i++) Assert.AreEqual(expected[i], table[8 * 8 + i], 1e-6f, $"component {i}");
        // Patch (0, 0): sin 0 = 0, cos 0 = 1.
        CollectionAssert.AreEqual(new[] { 0f, 0f, 1f, 1f, 0f, 0f, 1f, 1f }, table[8..16]);
    }

    [TestMethod]
    public void RejectsWidthNotMultipleOfFour()
        => Assert.ThrowsExactly<ArgumentException>(() => PosEmbed.SinCos2D(6, 2, clsToken: false));
}
