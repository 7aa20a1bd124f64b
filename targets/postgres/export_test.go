package postgres

// FactsSQL is the query every create and set starts with, for the test of
// its plan.
const FactsSQL = factsSQL
